"""Conversation memory: only heard words, interruption flagged, tool pairs kept together."""

from __future__ import annotations

import pytest

from ivr_bridge.config import ConfigError
from ivr_bridge.llm.history import INTERRUPTION_NOTE, Conversation, cut_to_heard
from ivr_bridge.llm.prompt import build_system_prompt
from ivr_bridge.llm.provider import ToolCallAssembler
from ivr_bridge.llm.settings import load_llm_settings
from ivr_bridge.llm.types import AssistantMessage, LLMError, ToolCall, UserMessage


def test_cut_keeps_the_spoken_punctuation_of_the_heard_prefix() -> None:
    spoken = "Hello, Sam. Your balance is $12.50, due Friday."
    assert cut_to_heard(spoken, "hello sam your balance") == "Hello, Sam. Your balance"


def test_cut_never_goes_past_the_heard_words_when_they_differ() -> None:
    # The speech service expanded "$12.50" into words; trust its words, add nothing unspoken.
    assert cut_to_heard("It's $12.50 today.", "It's twelve dollars") == "It's twelve dollars"
    assert cut_to_heard("Anything else?", "") == ""


def test_interrupted_reply_stores_heard_words_only_and_drops_planned_tools() -> None:
    conversation = Conversation("sys")
    conversation.add_user("balance?")
    call = ToolCall("c1", "end_call", {"reason": "done"}, '{"reason": "done"}')
    stored = conversation.commit_assistant(
        "Your balance is twelve dollars. Anything else?",
        "Your balance is",
        interrupted=True,
        tool_calls=[call],
    )
    assert stored == AssistantMessage("Your balance is", (), interrupted=True)
    assert "twelve" not in repr(conversation.messages)


def test_uninterrupted_reply_is_stored_whole_with_its_tool_calls() -> None:
    conversation = Conversation("sys")
    call = ToolCall("c1", "lookup", {}, "{}")
    stored = conversation.commit_assistant(
        "Checking.", "Checking.", interrupted=False, tool_calls=[call]
    )
    assert stored == AssistantMessage("Checking.", (call,), False)
    assert conversation.commit_assistant("", "", interrupted=False) is None


def test_request_explains_the_interruption_mark_to_the_model() -> None:
    request = Conversation("Be kind.").request(max_tokens=50, temperature=None)
    assert request.system.startswith("Be kind.") and INTERRUPTION_NOTE in request.system


def test_trimming_never_orphans_a_tool_result() -> None:
    conversation = Conversation("sys", max_messages=4)
    call = ToolCall("c1", "lookup", {}, "{}")
    for turn in range(3):
        conversation.add_user(f"q{turn}")
        conversation.commit_assistant("", "", interrupted=False, tool_calls=[call])
        conversation.add_tool_result(call, "{}")
    assert isinstance(conversation.messages[0], UserMessage)
    assert len(conversation.messages) <= 4


def test_tool_call_fragments_join_and_bad_json_is_a_protocol_error() -> None:
    calls = ToolCallAssembler()
    calls.add(0, "c1", "lookup", '{"a"')
    calls.add(1, "c2", "end_call", "")
    calls.add(0, None, None, ": 1}")
    assert calls.complete_all() == [
        ToolCall("c1", "lookup", {"a": 1}, '{"a": 1}'),
        ToolCall("c2", "end_call", {}, "{}"),
    ]
    calls.add(0, "c3", "lookup", '{"a": ')
    with pytest.raises(LLMError) as caught:
        calls.complete(0)
    assert caught.value.kind == "protocol"


def test_prompt_keeps_the_flows_persona_and_phone_style() -> None:
    prompt = build_system_prompt(persona="You work for {{ company }}.", context={"caller": "+1555"})
    assert prompt.startswith("You work for {{ company }}."), "never rendered a second time"
    assert "markdown" in prompt and "- caller: +1555" in prompt


def test_settings_errors_name_the_variable_and_hide_the_key() -> None:
    with pytest.raises(ConfigError, match="IVR_LLM_MODEL"):
        load_llm_settings(api_key="sk-secret-999")
    with pytest.raises(ConfigError) as caught:
        load_llm_settings(model="m", provider="bogus", api_key="sk-secret-999")
    assert "IVR_LLM_PROVIDER" in str(caught.value) and "sk-secret-999" not in str(caught.value)
    assert load_llm_settings(model="llama3", base_url="http://127.0.0.1:11434/v1").api_key is None
