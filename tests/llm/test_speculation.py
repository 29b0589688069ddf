"""Speculative replies: the model is asked at a pause that ends as a sentence, and that reply is
the turn's answer when the caller stays quiet, or is dropped (never spoken) when they go on.

The dialog runs against the shipped call fake with ``drafts=True`` (each utterance is heard at a
pause just before it ends, as a real call listening ahead hears it) and the OpenAI stand-in,
which records every request: one request per turn is what the caller's bill and the model's
latency both depend on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest
from prometheus_client import CollectorRegistry

from ivr_bridge.call.testing import ScriptedCall, utterance
from ivr_bridge.dialog.llm_ahead import Speculation, TurnAhead
from ivr_bridge.dialog.llm_dialog import LlmDialogConfig, run_llm_dialog
from ivr_bridge.errors import CallEnding
from ivr_bridge.llm.history import Conversation
from ivr_bridge.llm.openai_compat import OpenAICompatibleProvider
from ivr_bridge.llm.settings import LLMSettings
from ivr_bridge.llm.tools import ToolConfig
from ivr_bridge.server.call_metrics import CallMetrics
from tests.llm.fake_call import EchoTranscriber
from tests.llm.standin_llm import OpenAIStandIn, Reply

SETTINGS = LLMSettings(model="stand-in-1", api_key="sk-test", retry_backoff_ms=0, max_retries=0)


def _user_turns(body: dict[str, object]) -> list[str]:
    messages = body["messages"]
    assert isinstance(messages, list)
    return [m["content"] for m in messages if m["role"] == "user"]


async def _until(condition: Callable[[], bool], limit_s: float = 10.0) -> None:
    """Wait for something the stand-in sees (a floor, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not condition():
        assert loop.time() < deadline, "the stand-in model never saw it"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def _turn_ahead(
    server: OpenAIStandIn, call: ScriptedCall
) -> AsyncIterator[tuple[TurnAhead, Speculation]]:
    """The LLM dialog's listening ahead on its own, asking the stand-in model."""
    provider = OpenAICompatibleProvider(base_url=server.openai_base_url, model="stand-in-1")
    conversation = Conversation("Hi.")
    speculation = Speculation(
        call, provider, SETTINGS, lambda text: conversation.request(temperature=None, user=text)
    )
    try:
        yield TurnAhead(EchoTranscriber(), speculation), speculation
    finally:
        await speculation.close()
        await provider.close()


async def _dialog(server: OpenAIStandIn, call: ScriptedCall) -> None:
    provider = OpenAICompatibleProvider(base_url=server.openai_base_url, model="stand-in-1")
    config = LlmDialogConfig(SETTINGS, ToolConfig(), max_no_input=0)
    try:
        with pytest.raises(CallEnding):
            await run_llm_dialog(call, provider, EchoTranscriber(), config, system_prompt="Hi.")
    finally:
        await provider.close()


async def test_a_turn_that_ends_as_a_sentence_is_answered_by_the_reply_asked_at_its_pause(
    openai_server: OpenAIStandIn,
) -> None:
    openai_server.script(
        Reply(text=["It left", " the warehouse today."]),
        Reply(text=["On Thursday."]),
    )
    call = ScriptedCall(
        [utterance("Where is my order?"), utterance("When will it arrive?", start_ms=2000)],
        drafts=True,
    )
    await _dialog(openai_server, call)

    assert call.said[:2] == ["It left the warehouse today.", "On Thursday."]
    assert len(openai_server.bodies) == 2  # one request per turn: the speculative one was it
    assert _user_turns(openai_server.bodies[1]) == ["Where is my order?", "When will it arrive?"]
    assert [e["result"] for e in call.events_of("speculative_reply")] == ["kept", "kept"]
    registry = CollectorRegistry()
    metrics = CallMetrics(registry)
    for event in call.events:
        metrics.observe_event(event["kind"], {k: v for k, v in event.items() if k != "kind"})
    kept = registry.get_sample_value("ivr_llm_speculative_replies_total", {"result": "kept"})
    assert kept == 2


async def test_a_pause_that_does_not_end_a_sentence_asks_the_model_nothing(
    openai_server: OpenAIStandIn,
) -> None:
    openai_server.script(Reply(text=["Which order do you mean?"]))
    call = ScriptedCall([utterance("I was wondering about my")], drafts=True)
    await _dialog(openai_server, call)

    assert call.said[0] == "Which order do you mean?"
    assert len(openai_server.bodies) == 1
    assert call.events_of("speculative_reply") == []


async def test_the_caller_going_on_drops_the_reply_and_the_turn_asks_again(
    openai_server: OpenAIStandIn,
) -> None:
    openai_server.script(Reply(text=["Sure, what would you like to change?"], first_delay_s=0.2))
    call = ScriptedCall()
    async with _turn_ahead(openai_server, call) as (ahead, speculation):
        fragment = utterance("I want to change.")
        ahead.on_draft(await ahead.recognize(fragment), fragment)  # whisper closes a fragment
        await _until(lambda: len(openai_server.bodies) == 1)  # the model is working on it
        ahead.on_resumed()  # ... and the caller goes on: "my delivery address"
        whole = utterance("I want to change my delivery address.")
        assert speculation.take(await ahead.recognize(whole)) is None  # the turn asks anew
        await _until(lambda: openai_server.disconnected == 1)  # the request was hung up on

    assert _user_turns(openai_server.bodies[0]) == ["I want to change."]
    assert call.events_of("speculative_reply") == [
        {"kind": "speculative_reply", "result": "dropped", "why": "caller_went_on"}
    ]


async def test_other_words_than_the_drafted_ones_drop_the_reply(
    openai_server: OpenAIStandIn,
) -> None:
    call = ScriptedCall()
    async with _turn_ahead(openai_server, call) as (ahead, speculation):
        draft = utterance("Cancel it.")
        ahead.on_draft(await ahead.recognize(draft), draft)
        delivered = await ahead.recognize(utterance("Cancel it, please."))
        assert speculation.take(delivered) is None

    assert [e.get("why") for e in call.events_of("speculative_reply")] == ["other_words"]
