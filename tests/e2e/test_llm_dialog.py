"""The LLM dialog end to end: real bridge, real speech server, simulated caller, stand-in model.

``flows/llm_agent.yaml`` runs as shipped; its ``llm`` step talks to the stand-in OpenAI-compatible
server (which records every request, so the history the model was given can be asserted). Caller
turns are transcribed by a scripted transcriber (the words each utterance carried), except in
one test that runs the embedded whisper ``tiny.en`` on the synthesised caller voice.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import structlog
from aiohttp import web
from structlog.testing import capture_logs

from ivr_bridge.dialog.services import FlowServices
from ivr_bridge.llm.history import INTERRUPTION_MARK
from ivr_bridge.llm.settings import LLMSettings
from ivr_bridge.recognition.models import Transcription
from ivr_bridge.server.app import RunningBridge
from ivr_bridge.sim import CallResult, parse_script, run_call
from tests.e2e.conftest import AUTH_TOKEN
from tests.llm.standin_llm import OpenAIStandIn, Reply

SPEED = 4.0
AGENT_NUMBER = "+15005550100"
GREETING = "I'm the virtual assistant. How can I help you today?"
LONG_ANSWER = [
    "Your order",
    " number one two three four",
    " left our warehouse this morning,",
    " and it should arrive on Thursday",
    " between nine and five.",
    " You will get a text message",
    " with a tracking link",
    " as soon as the courier picks it up.",
]


class ScriptedTranscriber:
    """What each caller utterance said, in order (the sim speaks exactly these words).

    The dialog listens ahead, so one utterance is transcribed at its pauses as well as whole:
    audio that extends (or is a prefix of) the last audio heard is the same utterance, and gets
    the same words; only a new utterance takes the next text.
    """

    engine = "scripted"

    def __init__(self, *texts: str) -> None:
        self.texts = deque(texts)
        self.heard = 0
        self._last: tuple[bytes, str] | None = None

    async def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcription:
        if self._last is not None:
            audio, text = self._last
            n = min(len(audio), len(pcm16))
            if n and audio[:n] == pcm16[:n]:
                self._last = (max(audio, pcm16, key=len), text)
                return Transcription(text, 0.9, self.engine, 1.0)
        self.heard += 1
        text = self.texts.popleft() if self.texts else ""
        self._last = (pcm16, text)
        return Transcription(text, 0.9, self.engine, 1.0)


@pytest.fixture(autouse=True)
def info_logs_reach_capture() -> Any:
    """Bot speech and latency events are read from info logs; another test (or the CLI) may
    have configured structlog to filter them out, so let them through for these tests."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    yield
    structlog.configure(**saved)


@pytest.fixture
async def model() -> AsyncIterator[OpenAIStandIn]:
    server = OpenAIStandIn()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def orders() -> AsyncIterator[tuple[str, list[str]]]:
    asked: list[str] = []

    async def status(request: web.Request) -> web.Response:
        asked.append(request.query.get("order_number", ""))
        return web.json_response({"status": "shipped", "delivery": "Thursday"})

    app = web.Application()
    app.router.add_get("/orders/status", status)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/orders/status", asked
    await runner.cleanup()


@pytest.fixture
def slow_speech(speech_server: Any) -> Any:
    """Audio still in flight when the caller cuts in (as in test_barge_in)."""
    speech_server.config.first_audio_delay_ms = 60
    speech_server.config.realtime_factor = 0.2
    return speech_server


def model_settings(model: OpenAIStandIn) -> Callable[[], LLMSettings]:
    def load() -> LLMSettings:
        return LLMSettings(
            model="stand-in-1",
            base_url=model.openai_base_url,
            api_key="sk-test",
            filler_after_ms=3000,
            max_dead_air_ms=3000,
            retry_backoff_ms=0,
        )

    return load


@pytest.fixture
async def agent(make_bridge: Callable[..., Any]) -> RunningBridge:
    bridge: RunningBridge = await make_bridge(flow="llm_agent.yaml")
    return bridge


def use(bridge: RunningBridge, model: OpenAIStandIn, transcriber: Any) -> None:
    bridge.state.flow_services = FlowServices(
        llm_settings=model_settings(model), turn_transcriber=lambda: transcriber
    )


async def call(
    bridge: RunningBridge, steps: str, speed: float = SPEED
) -> tuple[CallResult, list[dict[str, Any]]]:
    url = f"{bridge.base_url}/twilio/voice?" + urlencode({"flow": "llm_agent.yaml"})
    script = parse_script(f"steps:\n{steps}", "llm_caller.yaml", Path(__file__).parent)
    with capture_logs() as logs:
        result = await run_call(
            voice_url=url, ws_url=None, script=script, auth_token=AUTH_TOKEN, speed=speed
        )
    return result, logs


def said(logs: list[dict[str, Any]]) -> list[str]:
    return [e["text"] for e in logs if e.get("event") == "bot says"]


def conversation(body: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(m["role"], m.get("content")) for m in body["messages"][1:]]


def tool_call(name: str, arguments: dict[str, Any]) -> tuple[str, str, list[str]]:
    raw = json.dumps(arguments)
    return (f"call_{name}", name, [raw[: len(raw) // 2], raw[len(raw) // 2 :]])


async def test_interrupted_answer_is_remembered_only_as_far_as_it_was_heard(
    agent: RunningBridge, model: OpenAIStandIn, slow_speech: Any
) -> None:
    transcriber = ScriptedTranscriber("where is my order", "wait, which order")
    use(agent, model, transcriber)
    model.script(
        Reply(text=LONG_ANSWER, chunk_delay_s=0.3),
        Reply(text=["Sorry, the one you placed on Monday."]),
    )
    result, logs = await call(
        agent,
        "  - wait_for_bot\n"
        '  - say: "where is my order"\n'
        '  - barge_in: {after_ms: 1200, say: "wait, which order"}\n'
        "  - wait_for_bot\n"
        "  - hangup\n",
    )
    assert len(model.bodies) == 2, result.summary_table()
    first, second = model.bodies
    assert conversation(first) == [("assistant", GREETING), ("user", "where is my order")]
    history = conversation(second)
    assert history[:2] == conversation(first)
    role, cut = history[2]
    assert role == "assistant" and cut.endswith(INTERRUPTION_MARK)
    heard = cut.removesuffix(INTERRUPTION_MARK).strip()
    full = "".join(LONG_ANSWER)
    assert heard and full.startswith(heard) and len(heard) < len(full) // 2, heard
    assert history[3] == ("user", "wait, which order")
    # The caller heard the cut, the bot stopped reading the model, and said only what was sent.
    assert [e for e in result.events if e["event"] == "clear"]
    assert any(u.interrupted for u in result.utterances)
    (answer,) = [e for e in logs if e.get("event") == "bot says" and e.get("pieces", 1) > 1]
    assert full.startswith(answer["text"]) and answer["text"] != full
    assert model.disconnected == 1, "the model's stream is cancelled with the answer"


async def test_order_lookup_then_end_call_after_the_goodbye_was_heard(
    agent: RunningBridge,
    model: OpenAIStandIn,
    orders: tuple[str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, asked = orders
    monkeypatch.setenv("IVR_ORDER_STATUS_URL", url)
    use(agent, model, ScriptedTranscriber("status of order one two three four", "thanks, bye"))
    model.script(
        Reply(tool_calls=[tool_call("order_status", {"order_number": "1234"})]),
        Reply(text=["It shipped,", " and arrives Thursday."]),
        Reply(
            text=["You're welcome. Goodbye!"],
            tool_calls=[tool_call("end_call", {"reason": "caller is done"})],
        ),
    )
    result, logs = await call(
        agent,
        "  - wait_for_bot\n"
        '  - say: "status of order one two three four"\n'
        "  - wait_for_bot\n"
        '  - say: "thanks, bye"\n'
        "  - wait_for_bot\n",
    )
    assert result.verdict.kind == "hangup", result.summary_table()
    assert asked == ["1234"]
    tool_result = model.bodies[1]["messages"][-1]
    assert (
        tool_result["role"] == "tool" and json.loads(tool_result["content"])["status"] == "shipped"
    )
    assert said(logs)[-2:] == ["It shipped, and arrives Thursday.", "You're welcome. Goodbye!"]
    # The goodbye played in full before the stream closed: nothing cut, nothing cleared.
    assert result.stats is not None and result.stats.bot_bytes_cleared == 0
    assert result.stats.bot_bytes_heard == result.stats.bot_bytes_received
    assert not result.utterances[-1].interrupted


async def test_transfer_call_dials_the_flows_agent_number(
    agent: RunningBridge, model: OpenAIStandIn
) -> None:
    use(agent, model, ScriptedTranscriber("let me talk to a person"))
    model.script(
        Reply(
            text=["Sure, I'm transferring you now."],
            tool_calls=[tool_call("transfer_call", {})],
        )
    )
    result, logs = await call(
        agent, '  - wait_for_bot\n  - say: "let me talk to a person"\n  - wait_for_bot\n'
    )
    assert (result.verdict.kind, result.verdict.target) == ("dial", AGENT_NUMBER)
    assert said(logs)[-1] == "Sure, I'm transferring you now."
    specs = {t["function"]["name"] for t in model.bodies[0]["tools"]}
    assert specs == {"transfer_call", "end_call", "goto_step", "order_status"}


async def test_goto_step_hands_the_call_back_to_the_menu(
    agent: RunningBridge, model: OpenAIStandIn
) -> None:
    use(agent, model, ScriptedTranscriber("main menu please"))
    model.script(Reply(tool_calls=[tool_call("goto_step", {"step_id": "menu"})]))
    result, logs = await call(
        agent,
        '  - wait_for_bot\n  - say: "main menu please"\n  - wait_for_bot\n'
        '  - press: "*"\n  - wait_for_bot\n',
    )
    assert result.verdict.kind == "hangup", result.summary_table()
    spoken = said(logs)
    assert spoken[-2].startswith("Main menu. To talk to the assistant, press 1.")
    assert spoken[-1] == "Thanks for calling. Goodbye."
    assert [e["outcome"] for e in logs if e.get("event") == "llm end"] == ["goto"]


async def test_without_llm_configuration_the_caller_hears_an_apology_and_the_call_ends(
    agent: RunningBridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("IVR_LLM_MODEL", "IVR_LLM_API_KEY", "IVR_LLM_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    agent.state.flow_services = FlowServices(turn_transcriber=lambda: ScriptedTranscriber())
    result, logs = await call(agent, "  - wait_for_bot\n")
    assert result.verdict.kind == "hangup"
    assert said(logs)[-1].startswith("Sorry, our assistant isn't available right now.")
    (problem,) = [e for e in logs if e.get("event") == "llm unavailable"]
    assert "IVR_LLM_MODEL" in problem["reason"]


async def test_embedded_whisper_transcribes_the_caller_and_the_turn_is_timed(
    agent: RunningBridge, model: OpenAIStandIn
) -> None:
    whisper = pytest.importorskip("ivr_bridge.stt").get_turn_transcriber
    from ivr_bridge.stt import SttSettings

    try:
        transcriber = whisper(SttSettings(stt="whisper"))
    except Exception as exc:  # the model wheel is not installed here
        pytest.skip(f"embedded whisper unavailable: {exc}")
    use(agent, model, transcriber)
    model.script(
        Reply(text=["Happy to help.", " Goodbye!"], tool_calls=[tool_call("end_call", {})])
    )
    result, logs = await call(
        agent, '  - wait_for_bot\n  - say: "I want to check my order"\n  - wait_for_bot\n'
    )
    assert result.verdict.kind == "hangup", result.summary_table()
    user = model.bodies[0]["messages"][-1]
    assert user["role"] == "user" and "order" in user["content"].lower(), user
    # The turn's latency breakdown is in the call's events (read by bench_turn_latency).
    (turn,) = [e for e in logs if e.get("event") == "llm caller turn"]
    assert turn["engine"].startswith("faster-whisper") and turn["stt_ms"] > 0
    (llm_round,) = [e for e in logs if e.get("event") == "llm round"]
    assert llm_round["first_token_ms"] is not None
    audio = [e for e in logs if e.get("event") == "bot first audio"]
    assert len(audio) == len(said(logs))


async def test_caller_still_talking_when_the_answer_starts_cuts_it_before_it_is_heard(
    agent: RunningBridge, model: OpenAIStandIn
) -> None:
    later = "actually I have a different question about a refund for my last order"
    use(agent, model, ScriptedTranscriber("where is my order", later))
    model.script(
        Reply(text=["Let me check", " that for you."], first_delay_s=1.0),
        Reply(text=["Sure, refunds take five days."]),
    )
    result, logs = await call(
        agent,
        '  - wait_for_bot\n  - say: "where is my order"\n  - silence: 2500\n'
        f'  - say: "{later}"\n  - wait_for_bot\n  - hangup\n',
    )
    assert [e for e in logs if e.get("event") == "caller talking at prompt"], result.summary_table()
    history = conversation(model.bodies[1])
    # The stale answer never played: the model learns it was cut before a word was heard.
    assert history[2] == ("assistant", INTERRUPTION_MARK)
    assert history[3] == ("user", later)
    assert said(logs)[-1] == "Sure, refunds take five days."


PAUSED = (
    ("I need help with my order", "from last Tuesday"),
    ("I want to change", "my delivery address"),
)
"""Sentences whose first halves whisper closes as sentences of their own: with a 200 ms wait
for a sentence end, both were answered inside the caller's pause."""


async def test_a_caller_pausing_mid_sentence_is_answered_once_the_sentence_is_done(
    agent: RunningBridge, model: OpenAIStandIn
) -> None:
    """Listening ahead ends a turn early when its words end as a sentence; whisper closes
    fragments too ("I want to change."), and the caller's 400 ms pause must not be answered.
    Real time (speed 1) so whisper's verdict can arrive inside the pause; the wait is counted in
    the call's audio frames, so a slow machine only makes a cut-off less likely, never more."""
    from ivr_bridge.stt import SttSettings, get_turn_transcriber

    use(agent, model, get_turn_transcriber(SttSettings(stt="whisper")))
    steps = "  - wait_for_bot\n"
    for first, rest in PAUSED:
        steps += f'  - say: "{first}"\n  - silence: 400\n  - say: "{rest}"\n  - wait_for_bot\n'
    result, logs = await call(agent, steps + "  - hangup\n", speed=1.0)

    halves = [t for t in result.turns if t.kind == "say"]
    assert len(halves) == 2 * len(PAUSED), result.summary_table()
    assert [t.latency_ms is None for t in halves] == [True, False] * len(PAUSED), (
        result.summary_table()  # None: the bot said nothing between the halves
    )
    turns = [e for e in logs if e.get("event") == "llm caller turn"]
    assert len(turns) == len(PAUSED)
