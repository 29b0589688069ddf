"""Calls to the LLM agent while the model stalls before its first token (shared by
``tests/e2e/test_llm_stall.py`` and ``benchmarks/bench_llm_stall.py``).

A real bridge runs ``flows/llm_agent.yaml`` with the embedded speech server, the embedded whisper
transcribing the caller, and the stand-in OpenAI-compatible model stalling ``stall_s`` after its
response headers before the first token. The simulated caller, at real-time speed, waits for the
greeting, asks one question and listens. What the caller lived through comes from its own
recording: its end of turn, then the bot utterances it heard until the answer.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import structlog
from pydantic import SecretStr
from structlog.testing import capture_logs

from ivr_bridge.config import Settings
from ivr_bridge.dialog.services import FlowServices
from ivr_bridge.llm.settings import LLMSettings
from ivr_bridge.server.app import RunningBridge, start_bridge
from ivr_bridge.sim import CallResult, parse_script, run_call
from ivr_bridge.speechserver.app import start_speech_server
from tests.llm.standin_llm import OpenAIStandIn, Reply

AUTH_TOKEN = "stall-auth-token-0123456789abcdef"
FLOWS_DIR = Path(__file__).resolve().parents[2] / "flows"
QUESTION = "I want to check my order"
ANSWER = ["It shipped", " today."]
UTTERANCE_GAP_MS = 150.0
"""Bot audio this far apart counts as two utterances (the sim's default 500 ms would merge a
filler and the answer that follows it, hiding the gap between them)."""
SILENCE_LIMIT_MS = 1200.0
"""The longest silence the caller may hear after speaking, while the model stalls."""


@dataclass
class StallRig:
    bridge: RunningBridge
    model: OpenAIStandIn
    transcriber: Any


@dataclass
class StallCall:
    stall_s: float
    result: CallResult
    said: list[str]
    """What the bridge said (its ``bot says`` events), in order."""
    requests: int
    """Requests the model saw during the call."""
    silences_ms: list[float]
    """The caller's end of turn → first bot audio heard, then each gap between the bot
    utterances it heard, until the call ended."""
    bridge_events: dict[str, dict[str, Any]]
    """The bridge's last ``llm caller turn`` and ``llm round`` events (endpointing_ms, stt_ms;
    waited_ms, fillers, first_token_ms): where the first silence went."""

    @property
    def longest_silence_ms(self) -> float | None:
        return max(self.silences_ms) if self.silences_ms else None

    @property
    def verdict(self) -> str:
        """pass / FAIL against ``SILENCE_LIMIT_MS``; inconclusive when missed by no more than
        the caller's clock can vouch for (its lag behind real time, plus a floor)."""
        worst = self.longest_silence_ms
        if worst is None:
            return "FAIL"
        if worst <= SILENCE_LIMIT_MS:
            return "pass"
        if worst <= SILENCE_LIMIT_MS + self.result.slack_ms:
            return "inconclusive"
        return "FAIL"


def whisper_or_none() -> Any:
    """The embedded whisper turn transcriber, or None when it cannot run here."""
    try:
        from ivr_bridge.stt import SttSettings, get_turn_transcriber

        return get_turn_transcriber(SttSettings(stt="whisper"))
    except Exception:
        return None


@asynccontextmanager
async def stall_rig(transcriber: Any) -> AsyncIterator[StallRig]:
    """Speech server, stand-in model and bridge, on loopback; stopped on exit."""
    saved = structlog.get_config()  # "bot says" is an info log: let it reach capture_logs
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    speech = await start_speech_server(host="127.0.0.1", port=0)
    speech.config.realtime_factor = 0.0
    model = OpenAIStandIn()
    await model.start()
    bridge = await start_bridge(
        Settings(
            twilio_auth_token=SecretStr(AUTH_TOKEN),
            lmnt_base_url=speech.base_url,
            lmnt_api_key=SecretStr("test-lmnt-key"),
            flows_dir=FLOWS_DIR,
            flow="llm_agent.yaml",
            port=0,
        )
    )

    def settings() -> LLMSettings:  # the shipped timing defaults
        return LLMSettings(
            model="stand-in-1", base_url=model.openai_base_url, api_key=SecretStr("sk-test")
        )

    bridge.state.flow_services = FlowServices(
        llm_settings=settings, turn_transcriber=lambda: transcriber
    )
    try:
        yield StallRig(bridge, model, transcriber)
    finally:
        await bridge.stop()
        await model.stop()
        await speech.stop()
        structlog.configure(**saved)


async def stall_call(rig: StallRig, stall_s: float, *, speed: float = 1.0) -> StallCall:
    """One call: greeting, the question, the answer after a ``stall_s`` stall, hang up."""
    rig.model.replies.clear()
    rig.model.script(Reply(text=ANSWER, first_delay_s=stall_s))
    before = len(rig.model.bodies)
    url = f"{rig.bridge.base_url}/twilio/voice?" + urlencode({"flow": "llm_agent.yaml"})
    steps = (
        "steps:\n  - wait_for_bot\n"
        f'  - say: "{QUESTION}"\n'
        "  - wait_for_bot: {quiet_ms: 1600}\n"  # longer than any hold-line gap
        "  - hangup\n"
    )
    script = parse_script(steps, "llm_stall.yaml", Path(__file__).parent)
    with capture_logs() as logs:
        result = await run_call(
            voice_url=url,
            ws_url=None,
            script=script,
            auth_token=AUTH_TOKEN,
            speed=speed,
            utterance_gap_ms=UTTERANCE_GAP_MS,
        )
    said = [str(e["text"]) for e in logs if e.get("event") == "bot says"]
    wanted = ("llm caller turn", "llm round")
    events = {str(e["event"]): dict(e) for e in logs if e.get("event") in wanted}
    requests = len(rig.model.bodies) - before
    return StallCall(stall_s, result, said, requests, silences(result), events)


def silences(result: CallResult) -> list[float]:
    """After the caller's last ``say``: the silence before each bot utterance it heard."""
    spoke = [t for t in result.turns if t.kind == "say" and t.end_ms is not None]
    if not spoke:
        return []
    end = spoke[-1].end_ms
    assert end is not None
    out: list[float] = []
    for u in result.utterances:
        if u.start_ms < end:
            continue
        out.append(round(u.start_ms - end, 1))
        end = u.end_ms
    return out
