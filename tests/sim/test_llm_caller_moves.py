"""The LLM caller's pure parts: what the model is told, what a reply makes the caller do, and
the settings it refuses before anything dials."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ivr_bridge.llm.types import (
    AssistantMessage,
    ChatRequest,
    Done,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallComplete,
    ToolResultMessage,
    UserMessage,
)
from ivr_bridge.sim import parse_script
from ivr_bridge.sim.scenario.llm_caller import (
    SILENCE,
    LLMCaller,
    check_script,
    move_from,
    system_prompt,
)
from ivr_bridge.sim.scenario.script import Converse, ScriptError


class ScriptedModel:
    """A provider that answers each request with the next scripted list of events."""

    name = "scripted"

    def __init__(self, *replies: list[StreamEvent]) -> None:
        self.replies = list(replies)
        self.requests: list[ChatRequest] = []
        self.closed = False

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        self.requests.append(request)
        for event in self.replies.pop(0):
            yield event

    async def close(self) -> None:
        self.closed = True


def call(name: str, **arguments: str) -> ToolCallComplete:
    return ToolCallComplete(ToolCall(f"id-{name}", name, dict(arguments)))


OPTIONS = Converse(goal="Get the balance.", persona="Ana, in a hurry.", model="m")


def test_the_prompt_carries_the_goal_and_the_persona() -> None:
    prompt = system_prompt("Get the balance.", "Ana, in a hurry.")
    assert "CALLER" in prompt and "Get the balance." in prompt and "Ana, in a hurry." in prompt


async def test_the_bot_speaks_as_the_user_and_the_caller_as_the_assistant() -> None:
    model = ScriptedModel(
        [TextDelta("Balance, "), TextDelta("please."), Done("stop")],
        [call("press_keys", digits="4417#"), Done("tool_calls")],
    )
    caller = LLMCaller(OPTIONS, provider=model)
    first = await caller.next_move("Press 1 or say balance.")
    assert first.say == "Balance, please." and not first.keys and not first.hang_up
    second = await caller.next_move("")
    assert second.keys == "4417#"
    history = model.requests[1].messages
    assert history[0] == UserMessage("Press 1 or say balance.")
    assert history[1] == AssistantMessage("Balance, please.")
    assert history[2] == UserMessage(SILENCE)  # the agent said nothing this turn
    assert [type(m) for m in caller.history[3:]] == [AssistantMessage, ToolResultMessage]
    assert {t.name for t in model.requests[0].tools} == {"press_keys", "hang_up"}


def test_a_reply_becomes_one_move() -> None:
    hang = ToolCall("1", "hang_up", {})
    keys = ToolCall("2", "press_keys", {"digits": "1 2x#"})
    assert move_from("Goodbye.", [hang]).hang_up
    assert move_from("", [keys]).keys == "12#"  # what is not a key is not pressed
    assert move_from("", [ToolCall("3", "order_pizza", {})]) == move_from("", [])


def test_a_converse_step_needs_a_model_and_a_key_before_it_dials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("IVR_CALLER_LLM_MODEL", "IVR_CALLER_LLM_API_KEY", "IVR_CALLER_LLM_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    script = parse_script("steps:\n  - converse: {goal: Say hi.}\n", "llm.yaml")
    assert script.branches and script.needs_words()  # it needs ears while the call runs
    with pytest.raises(ScriptError, match="IVR_CALLER_LLM_MODEL"):
        check_script(script)
    monkeypatch.setenv("IVR_CALLER_LLM_MODEL", "gpt-4o-mini")
    with pytest.raises(ScriptError, match="set IVR_CALLER_LLM_API_KEY"):
        check_script(script)
    local = parse_script(
        "steps:\n  - converse: {goal: Say hi., base_url: 'http://127.0.0.1:11434/v1'}\n", "l.yaml"
    )
    check_script(local)  # a local server needs no key


def test_a_bad_converse_step_is_named() -> None:
    with pytest.raises(ScriptError, match="max_turns"):
        parse_script("steps:\n  - converse: {goal: Hi., max_turns: 0}\n", "bad.yaml")
