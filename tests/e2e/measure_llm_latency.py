"""Measure caller end-of-speech → first bot audio in an LLM turn, broken down, at real time.

Not a test (timing belongs to measurements): ``.venv/bin/python -m tests.e2e.measure_llm_latency``.
Real bridge, embedded speech server, embedded whisper ``tiny.en``, the stand-in OpenAI-compatible
model (answers at once), and the simulated caller at speed 1. Each phase is read from the call's
events: ``caller speech`` (utterance delivered: endpointing), ``llm caller turn`` (``stt_ms``),
``llm round`` (``first_token_ms``), ``bot first audio`` (``tts_ms``: first text → first audio);
the total is the simulated caller's own measure (its speech end → bot audio arriving).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from ivr_bridge.config import Settings
from ivr_bridge.dialog.services import FlowServices
from ivr_bridge.llm.settings import LLMSettings
from ivr_bridge.server.app import start_bridge
from ivr_bridge.sim import parse_script, run_call
from ivr_bridge.speechserver.app import start_speech_server
from ivr_bridge.stt import SttSettings, get_turn_transcriber
from tests.e2e.conftest import AUTH_TOKEN, FLOWS_DIR
from tests.llm.standin_llm import OpenAIStandIn, Reply

TURNS = [
    "I want to check my order",
    "the number is one two three four",
    "when will it arrive",
    "can I change the address",
    "thank you very much",
]


async def measure() -> dict[str, list[float]]:
    speech = await start_speech_server(host="127.0.0.1", port=0)
    model = OpenAIStandIn()
    await model.start()
    model.script(*(Reply(text=["Sure,", " let me see."]) for _ in TURNS))
    bridge = await start_bridge(
        Settings(
            twilio_auth_token=AUTH_TOKEN,
            lmnt_base_url=speech.base_url,
            lmnt_api_key="k",
            flows_dir=FLOWS_DIR,
            flow="llm_agent.yaml",
            port=0,
        )
    )
    transcriber = get_turn_transcriber(SttSettings(stt="whisper"))
    await transcriber.transcribe(b"\0\0" * 8000, 8000)  # load the model before the call
    bridge.state.flow_services = FlowServices(
        llm_settings=lambda: LLMSettings(
            model="stand-in-1", base_url=model.openai_base_url, api_key="sk-x"
        ),
        turn_transcriber=lambda: transcriber,
    )
    steps = "".join(f'  - say: "{text}"\n  - wait_for_bot\n' for text in TURNS)
    script = parse_script(f"steps:\n  - wait_for_bot\n{steps}  - hangup\n", "measure.yaml")
    try:
        with capture_logs() as logs:
            result = await run_call(
                voice_url=bridge.base_url + "/twilio/voice",
                ws_url=None,
                script=script,
                auth_token=AUTH_TOKEN,
                speed=1.0,
            )
    finally:
        await bridge.stop()
        await model.stop()
        await speech.stop()
    return breakdown(logs, result.turns)


def breakdown(logs: list[dict[str, Any]], turns: list[Any]) -> dict[str, list[float]]:
    def events(name: str) -> list[dict[str, Any]]:
        return [e for e in logs if e.get("event") == name]

    delivered = events("caller speech")
    stt = [e["stt_ms"] for e in events("llm caller turn")]
    first_token = [e["first_token_ms"] for e in events("llm round")]
    tts = [e["tts_ms"] for e in events("bot first audio")][1:]  # [0] is the greeting
    n = min(len(turns), len(delivered), len(stt), len(first_token), len(tts))
    return {
        "endpointing_ms": [delivered[i]["call_ms"] - turns[i].end_ms for i in range(n)],
        "pickup_after_end_ms": [e["endpointing_ms"] for e in events("llm caller turn")][:n],
        "stt_ms": stt[:n],
        "first_token_ms": first_token[:n],
        "tts_first_audio_ms": tts[:n],
        "total_caller_end_to_bot_audio_ms": [t.latency_ms for t in turns[:n]],
    }


def main() -> int:
    phases = asyncio.run(measure())
    for name, values in phases.items():
        shown = ", ".join(f"{v:.0f}" for v in values if v is not None)
        usable = [v for v in values if v is not None]
        p50 = f"{statistics.median(usable):.0f}" if usable else "-"
        print(f"{name:36s} p50 {p50:>6s} ms   [{shown}]")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    raise SystemExit(main())
