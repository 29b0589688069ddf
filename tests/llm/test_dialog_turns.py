"""The LLM dialog's listening turns: no-input deadlines and recogniser outages."""

from __future__ import annotations

import pytest

from ivr_bridge.call.inputs import SpeechAbandoned, SpeechStarted
from ivr_bridge.call.testing import ScriptedCall, utterance
from ivr_bridge.dialog.llm_dialog import LlmDialogConfig, LlmOutcome, run_llm_dialog
from ivr_bridge.errors import CallEnding
from ivr_bridge.llm.history import Conversation
from ivr_bridge.llm.openai_compat import OpenAICompatibleProvider
from ivr_bridge.llm.settings import LLMSettings
from ivr_bridge.llm.tools import ToolConfig
from ivr_bridge.llm.types import ToolResultMessage
from ivr_bridge.recognition.models import Transcription
from tests.llm.fake_call import EchoTranscriber
from tests.llm.standin_llm import OpenAIStandIn, Reply

SETTINGS = LLMSettings(model="stand-in-1", api_key="sk-test", retry_backoff_ms=0)


class BrokenTranscriber:
    """A speech recogniser that is down for the whole call."""

    async def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcription:
        raise ConnectionError("recogniser unreachable")


async def _run(
    server: OpenAIStandIn, call: ScriptedCall, transcriber: object, **config: object
) -> LlmOutcome:
    provider = OpenAICompatibleProvider(base_url=server.openai_base_url, model="stand-in-1")
    settings = LLMSettings(**{**SETTINGS.model_dump(), "max_failed_turns": 2})
    conversation = config.pop("conversation", None)
    try:
        return await run_llm_dialog(
            call,
            provider,
            transcriber,  # type: ignore[arg-type]
            LlmDialogConfig(settings, **config),  # type: ignore[arg-type]
            system_prompt="You answer phones.",
            conversation=conversation,  # type: ignore[arg-type]
        )
    finally:
        await provider.close()


async def test_noise_does_not_restart_the_no_input_timer(openai_server: OpenAIStandIn) -> None:
    call = ScriptedCall([SpeechStarted(1000.0), SpeechAbandoned(1200.0), None])
    with pytest.raises(CallEnding):
        await _run(openai_server, call, EchoTranscriber(), no_input_timeout_ms=8000, max_no_input=0)
    # talking pushes the deadline out; the cough ends that, back to the original 8 s
    assert call.timeouts == [8000, 8000, 6800]
    assert call.said == ["Thanks for calling. Goodbye."]
    assert openai_server.bodies == []


async def test_a_recogniser_that_keeps_failing_ends_the_call(openai_server: OpenAIStandIn) -> None:
    call = ScriptedCall([utterance("hello"), utterance("hello?"), utterance("anyone?")])
    with pytest.raises(CallEnding):
        await _run(openai_server, call, BrokenTranscriber())
    fallback = SETTINGS.fallback_text
    goodbye = LlmDialogConfig(SETTINGS).failure_goodbye_text
    assert call.said == [fallback, fallback, goodbye]
    assert call.ended == ("hangup", None)
    assert openai_server.bodies == []


async def test_tool_calls_after_goto_step_get_skipped_results(openai_server: OpenAIStandIn) -> None:
    openai_server.script(
        Reply(
            tool_calls=[
                ("c1", "goto_step", ['{"step_id": "menu"}']),
                ("c2", "end_call", ['{"reason": "done"}']),
            ]
        )
    )
    conversation = Conversation("You answer phones.")
    call = ScriptedCall([utterance("menu please")])
    outcome = await _run(
        openai_server,
        call,
        EchoTranscriber(),
        tools=ToolConfig(goto_steps=("menu",)),
        conversation=conversation,
    )
    assert outcome == LlmOutcome("goto", step_id="menu") and call.ended is None
    # back in the flow, the conversation must still be valid for the vendor: one result per call
    results = [m for m in conversation.messages if isinstance(m, ToolResultMessage)]
    assert [(r.tool_call_id, r.is_error) for r in results] == [("c1", False), ("c2", True)]
    assert "skipped" in results[1].content
