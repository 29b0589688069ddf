"""An LLM as the caller: a goal and a persona instead of fixed lines (the ``converse`` step).

The scripted caller stays the default: it is deterministic, so a failure means the agent
changed. An LLM caller finds what scripts miss (a caller who asks something else, answers in
their own words) at the price of varying from run to run, so its scenarios want ``repeat`` and
a pass rate. It is shaped like a person on a phone: it hears the agent (speech-to-text of what
the caller heard since its last turn, the same ears ``if_bot_said`` uses), then does one thing:
says one short sentence, presses keys, or hangs up. The model sees the agent's words as the
user's and its own as the assistant's, over any OpenAI-compatible API (a hosted model, or a
local server such as Ollama or llama.cpp).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from ivr_bridge.llm.openai_compat import OpenAICompatibleProvider
from ivr_bridge.llm.provider import LLMProvider
from ivr_bridge.llm.types import (
    AssistantMessage,
    ChatRequest,
    LLMError,
    Message,
    TextDelta,
    ToolCall,
    ToolCallComplete,
    ToolResultMessage,
    ToolSpec,
    UserMessage,
)
from ivr_bridge.sim.scenario.script import (
    CallerScript,
    Converse,
    ConverseStep,
    ScriptError,
    all_steps,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
MODEL_ENV = "IVR_CALLER_LLM_MODEL"
BASE_URL_ENV = "IVR_CALLER_LLM_BASE_URL"
SILENCE = "(silence: the agent said nothing)"
"""What the model is told when the agent stayed quiet through its turn."""

TOOLS = (
    ToolSpec(
        "press_keys",
        "Press keys on the phone's keypad, when the agent asks for keys or a number.",
        {
            "type": "object",
            "properties": {"digits": {"type": "string", "pattern": "^[0-9*#]+$"}},
            "required": ["digits"],
        },
    ),
    ToolSpec(
        "hang_up",
        "End the call: when your goal is reached, or when it clearly cannot be.",
        {"type": "object", "properties": {"reason": {"type": "string"}}},
    ),
)


def system_prompt(goal: str, persona: str) -> str:
    who = f" You are this person: {persona}" if persona else ""
    return (
        "You are the CALLER on a phone call to an automated phone line or an agent; the user "
        f"messages are what you heard the agent say.{who} Your goal: {goal} "
        "Speak as a person on the phone: one short sentence per turn, plain words, no lists or "
        "markup. When the agent asks you to press keys or enter a number, use press_keys. When "
        "the goal is reached, or cannot be, say goodbye if you like and call hang_up."
    )


@dataclass(frozen=True, slots=True)
class Move:
    """What the caller does on its turn."""

    say: str = ""
    keys: str = ""
    hang_up: bool = False


@dataclass(frozen=True, slots=True)
class CallerModel:
    base_url: str
    model: str
    api_key: str | None


def resolve(options: Converse) -> CallerModel:
    """Where the model is, from the step and the environment; ScriptError naming what to set."""
    base_url = options.base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    model = options.model or os.environ.get(MODEL_ENV)
    if not model:
        raise ScriptError(f"converse needs a model: set converse.model or {MODEL_ENV}")
    key = os.environ.get(options.api_key_env) or None
    if key is None and base_url == DEFAULT_BASE_URL:
        raise ScriptError(
            f"converse calls {DEFAULT_BASE_URL}: set {options.api_key_env} to the API key "
            f"(or point converse.base_url / {BASE_URL_ENV} at a local server that needs none)"
        )
    return CallerModel(base_url, model, key)


def check_script(script: CallerScript) -> None:
    """Fail before dialling when a ``converse`` step could not reach its model."""
    for step in all_steps(script.steps):
        if isinstance(step, ConverseStep):
            resolve(step.converse)


class LLMCaller:
    """One call's conversation with the model: the history and the next move."""

    def __init__(self, options: Converse, provider: LLMProvider | None = None) -> None:
        self.options = options
        if provider is None:
            where = resolve(options)
            provider = OpenAICompatibleProvider(
                base_url=where.base_url,
                model=where.model,
                api_key=where.api_key,
                first_token_timeout_s=options.timeout_s,
                idle_timeout_s=options.timeout_s,
            )
        self.provider = provider
        self.history: list[Message] = []
        self.requests = 0

    def request(self) -> ChatRequest:
        return ChatRequest(
            system=system_prompt(self.options.goal, self.options.persona),
            messages=tuple(self.history),
            tools=TOOLS,
            max_tokens=120,
            temperature=self.options.temperature,
        )

    async def next_move(self, heard: str) -> Move:
        """Tell the model what the agent said; return what the caller does. A provider's error,
        or no whole reply within ``timeout_s``, is an LLMError."""
        self.history.append(UserMessage(heard.strip() or SILENCE))
        self.requests += 1
        text: list[str] = []
        calls: list[ToolCall] = []
        limit = self.options.timeout_s
        try:
            async with asyncio.timeout(limit):  # a reply trickling in counts as no reply
                async for event in self.provider.stream(self.request()):
                    if isinstance(event, TextDelta):
                        text.append(event.text)
                    elif isinstance(event, ToolCallComplete):
                        calls.append(event.call)
        except TimeoutError:
            why = f"no whole reply within {limit:g} s"
            raise LLMError("timeout", why, retryable=True) from None
        said = " ".join("".join(text).split())
        self.history.append(AssistantMessage(said, tuple(calls)))
        for call in calls:  # every tool call answered, as the chat APIs require
            self.history.append(ToolResultMessage(call.id, call.name, '{"ok": true}'))
        return move_from(said, calls)

    def explain(self, error: LLMError) -> str:
        """The error as a call's event shows it, with what to check when it is the key."""
        if error.kind == "auth":
            return f"{error} (check {self.options.api_key_env})"
        return str(error)

    async def close(self) -> None:
        await self.provider.close()


def move_from(said: str, calls: list[ToolCall]) -> Move:
    """The caller's move from the model's reply (keys that are not keys are dropped)."""
    keys = ""
    hang_up = False
    for call in calls:
        if call.name == "press_keys":
            digits = str(call.arguments.get("digits", ""))
            keys += "".join(c for c in digits if c in "0123456789*#")
        elif call.name == "hang_up":
            hang_up = True
    return Move(say=said, keys=keys, hang_up=hang_up)


__all__ = ["LLMCaller", "LLMError", "Move", "check_script", "move_from", "resolve", "system_prompt"]
