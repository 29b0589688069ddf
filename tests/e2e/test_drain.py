"""Deploys lose no call: a draining bridge finishes its calls, ends overrunning ones with words,
serves Twilio's after-stream requests, accepts streams of calls it already answered, and exits
within its grace plus a small margin."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ivr_bridge.call.app import DialogApp
from ivr_bridge.call.control import BargeInPolicy, CallControl
from ivr_bridge.config import Settings
from ivr_bridge.server.app import AFTER_STREAM_WAIT_S, SHUTDOWN_WORDS, RunningBridge, start_bridge
from ivr_bridge.server.stream_tokens import TOKEN_PARAMETER, derive_key, issue
from ivr_bridge.sim import CallResult, parse_script, run_call
from tests.e2e.conftest import AUTH_TOKEN, FLOWS_DIR
from tests.e2e.twilio_peer import new_call_sid

SPEED = 4.0
CALLS = 10


async def _forever(call: CallControl) -> None:
    """An app that never ends its call by itself."""
    while True:
        await call.say(
            "This is a very long announcement that goes on and on without an end in sight.",
            barge_in=BargeInPolicy("none"),
        )


@pytest.fixture
async def bridge(speech_server: Any) -> AsyncIterator[RunningBridge]:
    settings = Settings(
        twilio_auth_token=AUTH_TOKEN,
        lmnt_base_url=speech_server.base_url,
        lmnt_api_key="k",
        flows_dir=FLOWS_DIR,
        flow="support_line.yaml",
        port=0,
    )
    bridge = await start_bridge(
        settings, apps={"forever": lambda parameters: DialogApp(_forever, name="forever")}
    )
    yield bridge
    if not bridge.state.draining:
        await bridge.stop()


async def _call(bridge: RunningBridge, steps: str, query: str = "") -> CallResult:
    return await run_call(
        voice_url=f"{bridge.base_url}/twilio/voice{query}",
        ws_url=None,
        script=parse_script(f"steps:\n{steps}", "drain.yaml"),
        auth_token=AUTH_TOKEN,
        speed=SPEED,
    )


async def _until_active(bridge: RunningBridge, calls: int, limit_s: float = 20.0) -> None:
    async with asyncio.timeout(limit_s):
        while len(bridge.state.active_calls) < calls:  # noqa: ASYNC110 - a count, no event
            await asyncio.sleep(0.02)


async def test_calls_ending_during_the_drain_all_get_their_outcome(bridge: RunningBridge) -> None:
    transfer = '  - wait_for_bot\n  - press: "0"\n  - silence: 12000\n'
    goodbye = '  - wait_for_bot\n  - press: "*"\n  - silence: 12000\n'
    calls = [
        asyncio.create_task(_call(bridge, transfer if n % 2 else goodbye)) for n in range(CALLS)
    ]
    await _until_active(bridge, CALLS)
    stopping = asyncio.create_task(bridge.stop(grace_s=30))  # SIGTERM with every call live
    results = await asyncio.wait_for(asyncio.gather(*calls), 60)
    await asyncio.wait_for(stopping, 40)
    verdicts = sorted((r.verdict.kind, r.verdict.target) for r in results)
    # 10/10: every outcome was collected through <Connect action>, none refused or lost.
    assert verdicts == sorted(
        [("dial", "+15005550100")] * (CALLS // 2) + [("hangup", None)] * (CALLS // 2)
    ), [r.summary_table() for r in results if r.verdict.kind not in ("dial", "hangup")]


async def test_a_call_still_running_when_the_grace_ends_hears_words_then_a_hangup(
    bridge: RunningBridge,
) -> None:
    call = asyncio.create_task(_call(bridge, "  - silence: 120000\n", "?app=forever"))
    await _until_active(bridge, 1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await bridge.stop(grace_s=12)
    took = loop.time() - started
    result = await asyncio.wait_for(call, 10)
    assert result.verdict.kind == "hangup" and result.verdict.verbs == ["Hangup"]
    last = result.utterances[-1]
    words_ms = len(SHUTDOWN_WORDS) * 40  # espeak says ~25 characters a second
    assert last.end_ms - last.start_ms >= words_ms * 0.5, "the goodbye was cut off"
    assert not last.interrupted
    assert took <= 12 + AFTER_STREAM_WAIT_S + 3  # the grace plus a small margin


async def test_a_stream_arriving_during_the_drain_is_answered_not_dropped(
    bridge: RunningBridge,
) -> None:
    """The voice webhook was answered just before SIGTERM; its stream comes after."""
    holder = asyncio.create_task(_call(bridge, "  - silence: 120000\n", "?app=forever"))
    await _until_active(bridge, 1)
    stopping = asyncio.create_task(bridge.stop(grace_s=30))
    await asyncio.sleep(0)
    assert bridge.state.draining
    # A call answered before the drain: the simulator opens its stream now (direct mode), with
    # the parameters (and stream token) the voice webhook gave it.
    call_sid = new_call_sid()
    parameters = {"flow": "support_line.yaml"}
    parameters[TOKEN_PARAMETER] = issue(derive_key(AUTH_TOKEN), call_sid, parameters)
    late = await run_call(
        voice_url=None,
        ws_url=bridge.base_url.replace("http", "ws") + "/twilio/media",
        script=parse_script('steps:\n  - wait_for_bot\n  - press: "*"\n  - silence: 8000\n'),
        auth_token=AUTH_TOKEN,
        speed=SPEED,
        custom_parameters=parameters,
        call_sid=call_sid,
    )
    assert late.utterances, "the stream was refused: a call the caller heard ringing dropped"
    holder.cancel()
    await asyncio.gather(holder, return_exceptions=True)
    await asyncio.wait_for(stopping, 40)
