"""An LLM dialog heard by Deepgram live, end to end: one WebSocket for every turn of the call.

Real bridge (``flows/llm_agent.yaml``), real speech server, simulated caller, the OpenAI stand-in
model and the Deepgram live stand-in (``tests/llm/standin_deepgram.py``: it hears the caller's
frames as they stream and gives each stretch of speech the next scripted transcript). The
per-utterance transcriber is one that fails the test if the dialog ever falls back to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ivr_bridge.dialog.services import FlowServices
from ivr_bridge.recognition.models import Transcription
from ivr_bridge.server.app import RunningBridge
from ivr_bridge.stt import DeepgramLive
from tests.e2e.test_llm_dialog import call, model_settings
from tests.llm.standin_deepgram import DeepgramStandIn
from tests.llm.standin_llm import OpenAIStandIn, Reply

TURNS = ("Where is my order?", "Can you send it to my office instead?", "Thank you.")


class NoPerUtteranceTranscriber:
    engine = "unused"

    async def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcription:
        raise AssertionError("the dialog transcribed an utterance on its own: not the stream")


async def test_every_turn_of_the_call_is_heard_on_one_live_stream(
    make_bridge: Callable[..., Any], openai_server: OpenAIStandIn, deepgram: DeepgramStandIn
) -> None:
    model = openai_server
    agent: RunningBridge = await make_bridge(flow="llm_agent.yaml")
    streams: list[DeepgramLive] = []

    def live() -> DeepgramLive:
        streams.append(DeepgramLive(deepgram.api_key, url=deepgram.url, endpointing_ms=300))
        return streams[-1]

    agent.state.flow_services = FlowServices(
        llm_settings=model_settings(model),
        turn_transcriber=NoPerUtteranceTranscriber,
        live_transcriber=live,
    )
    deepgram.transcripts.extend(TURNS)
    model.script(
        Reply(text=["It ships on Thursday."]),
        Reply(text=["Done, it goes to your office."]),
        Reply(text=["You're welcome."]),
    )
    steps = "  - wait_for_bot\n"
    for text in TURNS:
        steps += f'  - say: "{text}"\n  - wait_for_bot\n'
    result, logs = await call(agent, steps + "  - hangup\n")

    replies = [t for t in result.turns if t.kind == "say"]
    assert [t.latency_ms is not None for t in replies] == [True] * 3, result.summary_table()
    last = model.bodies[-1]["messages"]  # the model's view of the call: each turn's words
    assert [m["content"] for m in last if m["role"] == "user"] == list(TURNS)
    assert deepgram.connections == 1 and len(streams) == 1  # one handshake for the whole call
    assert streams[0].stats.connections == 1
    turns = [e for e in logs if e.get("event") == "llm caller turn"]
    assert [t["engine"] for t in turns] == ["deepgram:nova-3"] * 3
