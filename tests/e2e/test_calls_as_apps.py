"""Calls as apps, end to end: injected apps, early caller input, type-ahead, the control route,
readiness. A real bridge, the real speech server and the simulated caller."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from structlog.testing import capture_logs

from ivr_bridge.call.app import DialogApp
from ivr_bridge.call.control import BargeInPolicy, CallControl, SayResult
from ivr_bridge.call.inputs import CallerInput, SpeechInput
from ivr_bridge.server.app import RunningBridge
from ivr_bridge.sim import CallResult, parse_script, run_call
from tests.e2e.conftest import AUTH_TOKEN

SPEED = 4.0
CONTROL_TOKEN = "control-token-0123456789abcdef"
LONG_PROMPT = (
    "Please listen carefully, as our menu options have changed. This message is long on "
    "purpose, so that there is plenty of time to end the call from outside while it plays. "
    "It goes on for a while longer, and then a little more, before it finally ends."
)


async def _call(bridge: RunningBridge, script: str, speed: float = SPEED, **query: str) -> Any:
    url = f"{bridge.base_url}/twilio/voice?" + urlencode(query)
    return await run_call(
        voice_url=url,
        ws_url=None,
        script=parse_script(script, "inline.yaml"),
        auth_token=AUTH_TOKEN,
        speed=speed,
    )


class FirstInputApp:
    """Listens before it speaks, as an outbound dialog must: what did the callee say first?"""

    def __init__(self) -> None:
        self.first: CallerInput | None = None
        self.started_at_ms: float | None = None

    def app(self) -> DialogApp:
        return DialogApp(self.run, name="first-input")

    async def run(self, call: CallControl) -> None:
        self.started_at_ms = call.clock.now_ms()
        while (item := await call.next_input(5000)) is not None:
            if isinstance(item, SpeechInput):
                self.first = item
                break
        await call.say("Hi, this is the clinic calling." if self.first else "Hello?")
        await call.hangup()


async def test_the_callees_first_word_before_the_speech_session_is_ready_reaches_the_app(
    make_bridge: Callable[..., Any], speech_server: Any
) -> None:
    listener = FirstInputApp()
    bridge = await make_bridge(apps={"first-input": lambda parameters: listener.app()})
    speech_server.config.accept_delay_ms = 1000  # 4 s of call time before the session opens
    result = await _call(
        bridge,
        'steps:\n  - say: "Hello? Who is this?"\n  - wait_for_bot\nexpect: {ended: hangup}\n',
        app="first-input",
    )
    assert result.passed, result.summary_table()
    assert listener.first is not None, "the callee's first words were lost"
    assert listener.started_at_ms is not None
    # Spoken (and finished) while the bridge was still opening the speech session.
    assert listener.first.end_ms < listener.started_at_ms
    caller_turn = result.turns[0]
    assert abs(listener.first.start_ms - caller_turn.start_ms) <= 300  # pre-roll and VAD onset


async def test_a_digit_during_the_greeting_answers_the_menu_without_replaying_it(
    make_bridge: Callable[..., Any],
) -> None:
    bridge = await make_bridge(flow="support_line.yaml")
    with capture_logs() as logs:
        result = await _call(
            bridge,
            "steps:\n"
            '  - barge_in: {after_ms: 600, press: "9"}\n'  # 9 = hear the options again
            "  - wait_for_bot\n"
            '  - press: "*"\n'
            "  - silence: 6000\n"
            "expect: {ended: hangup}\n",
            speed=8.0,
            flow="support_line.yaml",
        )
    assert result.passed, result.summary_table()
    said = [e["text"] for e in logs if e.get("event") == "bot says"]
    skipped = [e for e in logs if e.get("event") == "prompt skipped"]
    menu = "For your account balance, press 1 or say balance."
    # The greeting was cut by the key; the menu's prompt was not spoken over the waiting key;
    # the key answered it (9: the options again), so the menu is heard exactly once, in full.
    assert len(skipped) == 1 and skipped[0]["text"].startswith(menu)
    assert sum(s.startswith(menu) for s in said) == 1
    assert said[-1] == "Thank you for calling Example Bank. Goodbye."


async def test_a_finish_key_after_a_full_length_entry_does_not_reach_the_next_step(
    make_bridge: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IVR_BALANCE_URL", "http://127.0.0.1:9/balance")  # lookup fails fast
    bridge = await make_bridge(flow="support_line.yaml")
    with capture_logs() as logs:
        result = await _call(
            bridge,
            "steps:\n"
            "  - wait_for_bot\n"
            '  - press: "1"\n'
            "  - wait_for_bot\n"
            '  - press: "1234567890#"\n'  # ten digits is the maximum: '#' ends nothing new
            "  - wait_for_bot\n"
            '  - press: "2"\n'
            "  - silence: 6000\n"
            "expect: {ended: hangup}\n",
            speed=8.0,
            flow="support_line.yaml",
        )
    assert result.passed, result.summary_table()
    said = [e["text"] for e in logs if e.get("event") == "bot says"]
    assert "Sorry, I can't look up balances right now. Please try again later." in said
    assert not any(s.startswith("Sorry, I didn't get that") for s in said), said
    assert [e["digit"] for e in logs if e.get("event") == "dtmf swallowed"] == ["•"]
    # No key interrupted anything: the '#' did not cut the apology for the failed lookup.
    assert not [e for e in logs if e.get("event") == "barge in" and e.get("by") == "dtmf"]


# --- the control route --------------------------------------------------------------------


class LongPromptApp:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.call_sid = ""
        self.said: SayResult | None = None

    def app(self) -> DialogApp:
        return DialogApp(self.run, name="long-prompt")

    async def run(self, call: CallControl) -> None:
        self.call_sid = call.details.call_sid
        self.started.set()
        self.said = await call.say(LONG_PROMPT, barge_in=BargeInPolicy("none"))
        await call.say("You heard all of it.", barge_in=BargeInPolicy("none"))
        await call.hangup()


async def _control(
    bridge: RunningBridge, call_sid: str, body: Any, token: str | None = CONTROL_TOKEN
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as http:
        url = f"{bridge.base_url}/calls/{call_sid}/control"
        async with http.post(url, json=body, headers=headers) as resp:
            return resp.status, await resp.json()


async def _controlled_call(
    make_bridge: Callable[..., Any], body: dict[str, str]
) -> tuple[CallResult, LongPromptApp, int]:
    app = LongPromptApp()
    bridge = await make_bridge(
        control_token=CONTROL_TOKEN, apps={"long": lambda parameters: app.app()}
    )
    call = asyncio.create_task(_call(bridge, "steps:\n  - silence: 60000\n", app="long"))
    await asyncio.wait_for(app.started.wait(), 10)
    status, answer = await _control(bridge, app.call_sid, body)
    assert status == 202 and answer["status"] == "delivered", answer
    return await asyncio.wait_for(call, 30), app, status


async def test_a_control_event_transfers_a_live_call_at_once(
    make_bridge: Callable[..., Any],
) -> None:
    result, app, _ = await _controlled_call(
        make_bridge, {"action": "transfer", "to": "+15005550123"}
    )
    assert result.verdict.kind == "dial" and result.verdict.target == "+15005550123"
    assert app.said is None, "the prompt was still playing: the transfer must not wait for it"
    heard_s = sum(u.end_ms - u.start_ms for u in result.utterances) / 1000
    assert heard_s < 10, f"the caller heard {heard_s:.1f} s: the whole prompt, not cut short"


async def test_a_control_event_hangs_up_a_live_call(make_bridge: Callable[..., Any]) -> None:
    result, app, _ = await _controlled_call(make_bridge, {"action": "hangup"})
    assert result.verdict.kind == "hangup"
    assert app.said is None


async def test_the_control_route_refuses_bad_tokens_unknown_calls_and_bad_bodies(
    make_bridge: Callable[..., Any],
) -> None:
    app = LongPromptApp()
    bridge = await make_bridge(
        control_token=CONTROL_TOKEN, apps={"long": lambda parameters: app.app()}
    )
    call = asyncio.create_task(_call(bridge, "steps:\n  - silence: 60000\n", app="long"))
    await asyncio.wait_for(app.started.wait(), 10)
    hangup = {"action": "hangup"}
    assert (await _control(bridge, app.call_sid, hangup, token=None))[0] == 401
    assert (await _control(bridge, app.call_sid, hangup, token="not-the-token-xxxxxx"))[0] == 401
    status, answer = await _control(bridge, "CA" + "f" * 32, hangup)
    assert status == 404 and "no live call" in answer["error"]
    status, answer = await _control(bridge, app.call_sid, {"action": "transfer", "to": "555"})
    assert status == 400 and answer["error"].startswith("transfer.to")
    status, answer = await _control(bridge, app.call_sid, {"action": "sparkle"})
    assert status == 400
    assert not call.done(), "refused requests must not touch the call"
    assert (await _control(bridge, app.call_sid, hangup))[0] == 202
    result = await asyncio.wait_for(call, 30)
    assert result.verdict.kind == "hangup"


async def test_the_control_route_is_off_without_a_token(bridge: RunningBridge) -> None:
    status, answer = await _control(bridge, "CA" + "0" * 32, {"action": "hangup"})
    assert status == 404 and "IVR_CONTROL_TOKEN" in answer["error"]


# --- readiness ----------------------------------------------------------------------------


async def _status(bridge: RunningBridge, path: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(bridge.base_url + path) as resp:
        return resp.status, await resp.json()


async def test_readyz_is_503_while_draining_and_healthz_stays_200(
    make_bridge: Callable[..., Any],
) -> None:
    app = LongPromptApp()
    bridge = await make_bridge(
        control_token=CONTROL_TOKEN, apps={"long": lambda parameters: app.app()}
    )
    assert (await _status(bridge, "/readyz"))[0] == 200
    call = asyncio.create_task(_call(bridge, "steps:\n  - silence: 60000\n", app="long"))
    await asyncio.wait_for(app.started.wait(), 10)
    drain = asyncio.create_task(bridge.drain(30))
    await asyncio.sleep(0)  # drain() marks the bridge draining before it waits
    ready, body = await _status(bridge, "/readyz")
    assert ready == 503 and body["problems"][0].startswith("draining")
    health, body = await _status(bridge, "/healthz")
    assert health == 200 and body["status"] == "draining"
    await _control(bridge, app.call_sid, {"action": "hangup"})
    await asyncio.wait_for(call, 30)
    await asyncio.wait_for(drain, 30)


async def test_readyz_is_503_while_the_speech_path_is_down(
    make_bridge: Callable[..., Any],
) -> None:
    bridge = await make_bridge(lmnt_base_url="http://127.0.0.1:9")  # nothing listens there
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    status, body = await _status(bridge, "/readyz")
    while status == 200 and loop.time() < deadline:  # the probe runs at startup
        await asyncio.sleep(0.05)
        status, body = await _status(bridge, "/readyz")
    assert status == 503 and body["problems"][0].startswith("speech path down")
    assert (await _status(bridge, "/healthz"))[0] == 200
