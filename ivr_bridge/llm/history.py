"""Conversation memory that stays true to what the caller actually heard.

The one rule: an assistant message holds only words that played to the caller. When the caller
barges in, ``commit_assistant`` keeps the heard prefix of the spoken text, drops the rest (and
any tool calls the model planned after it), and flags the message ``interrupted``.

How the flag reaches the model (the same for every provider, so switching vendors keeps the
meaning): the message text ends with ``INTERRUPTION_MARK`` ("—"), and the system prompt carries
``INTERRUPTION_NOTE`` explaining the mark. An em-dash is what a transcript of a cut-off speaker
looks like, costs no tokens worth mentioning, and, unlike a bracketed note, the model will not
read it aloud if it imitates it (speech engines do not voice it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ivr_bridge.llm.types import (
    AssistantMessage,
    ChatRequest,
    Message,
    ToolCall,
    ToolResultMessage,
    ToolSpec,
    UserMessage,
)

INTERRUPTION_MARK = "—"
INTERRUPTION_NOTE = (
    f'When one of your earlier replies ends with "{INTERRUPTION_MARK}", the caller interrupted '
    "you there: they heard only the words before it, nothing after. Don't assume they heard the "
    "rest; answer what they said, and repeat anything important they missed."
)

_WORD = re.compile(r"[\w']+")


def _norm(token: str) -> str:
    return "".join(_WORD.findall(token.lower()))


def cut_to_heard(spoken: str, heard: str) -> str:
    """The prefix of ``spoken`` (punctuation intact) that the caller heard.

    ``heard`` comes from the speech service's word timestamps, which may drop punctuation or
    case. When its words match the start of ``spoken`` word for word, the spoken prefix is kept
    (so "Hello, Sam." stays punctuated); otherwise the heard words themselves are used, never
    anything beyond them.
    """
    heard_tokens = heard.split()
    if not heard_tokens:
        return ""
    spoken_tokens = list(re.finditer(r"\S+", spoken))
    spoken_words = [t for t in spoken_tokens if _norm(t.group())]
    heard_words = [_norm(t) for t in heard_tokens if _norm(t)]
    if len(heard_words) <= len(spoken_words) and all(
        _norm(s.group()) == h for s, h in zip(spoken_words, heard_words, strict=False)
    ):
        if not heard_words:
            return ""
        end = spoken_words[len(heard_words) - 1].end()
        return spoken[:end].strip()
    return " ".join(heard_tokens)


def render_interrupted(text: str) -> str:
    """How an interrupted assistant message is shown to the model."""
    return f"{text} {INTERRUPTION_MARK}".strip()


class Conversation:
    """The messages of one LLM dialog, oldest first; builds each request."""

    def __init__(self, system: str, *, max_messages: int = 200) -> None:
        self.system = system
        self._messages: list[Message] = []
        self._max_messages = max_messages

    @property
    def messages(self) -> tuple[Message, ...]:
        return tuple(self._messages)

    def add_user(self, text: str) -> None:
        self._append(UserMessage(text))

    def commit_assistant(
        self,
        spoken_text: str,
        heard_text: str,
        *,
        interrupted: bool,
        tool_calls: Sequence[ToolCall] = (),
    ) -> AssistantMessage | None:
        """Record one assistant reply as heard; returns what was stored (None if nothing).

        Interrupted: only the heard prefix survives and planned tool calls are dropped (the
        caller cut in before they could matter). Not interrupted: the full spoken text.
        """
        if interrupted:
            message = AssistantMessage(cut_to_heard(spoken_text, heard_text), (), True)
        else:
            if not spoken_text.strip() and not tool_calls:
                return None
            message = AssistantMessage(spoken_text.strip(), tuple(tool_calls), False)
        self._append(message)
        return message

    def add_tool_result(
        self, call: ToolCall, content: str, *, is_error: bool = False
    ) -> ToolResultMessage:
        message = ToolResultMessage(call.id, call.name, content, is_error)
        self._append(message)
        return message

    def request(
        self,
        tools: Sequence[ToolSpec] = (),
        *,
        max_tokens: int = 300,
        temperature: float | None,
        user: str | None = None,
    ) -> ChatRequest:
        """The next request; ``user``: as if ``add_user(user)`` had been called first (a
        speculative reply to words the caller may yet add to), without adding it."""
        system = f"{self.system}\n\n{INTERRUPTION_NOTE}" if self.system else INTERRUPTION_NOTE
        messages = self.messages if user is None else (*self.messages, UserMessage(user))
        return ChatRequest(system, messages, tuple(tools), max_tokens, temperature)

    def _append(self, message: Message) -> None:
        self._messages.append(message)
        if len(self._messages) > self._max_messages:
            self._trim()

    def _trim(self) -> None:
        """Drop the oldest exchanges, cutting only at a user message so a tool result never
        loses the assistant call it answers."""
        excess = len(self._messages) - self._max_messages
        cut = excess
        while cut < len(self._messages) and not isinstance(self._messages[cut], UserMessage):
            cut += 1
        del self._messages[:cut]
