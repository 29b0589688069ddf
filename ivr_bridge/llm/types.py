"""Provider-neutral LLM values: messages, tools, stream events and typed errors.

Every provider adapter turns its vendor's wire into these, so the dialog loop, the history and
the tests never see a vendor type. Plain frozen dataclasses: cheap, hashable, easy to assert on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ivr_bridge.errors import IvrBridgeError


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the model may call: its name, what it is for, and a JSON schema of arguments."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One complete tool call, arguments parsed (``{}`` when the model sent none)."""

    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str = ""
    """The arguments exactly as the model sent them (kept for the next request's history)."""


@dataclass(frozen=True, slots=True)
class UserMessage:
    text: str


@dataclass(frozen=True, slots=True)
class AssistantMessage:
    """What the assistant said *as heard by the caller*, and the tools it called.

    ``interrupted`` means the caller cut it off: ``text`` holds only the heard words, and each
    provider renders the flag so the model knows it was cut (see ``history.INTERRUPTED_NOTE``).
    """

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    interrupted: bool = False


@dataclass(frozen=True, slots=True)
class ToolResultMessage:
    tool_call_id: str
    name: str
    content: str
    """JSON text (or a short error sentence) fed back to the model."""
    is_error: bool = False


Message = UserMessage | AssistantMessage | ToolResultMessage


@dataclass(frozen=True, slots=True)
class ChatRequest:
    system: str
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    max_tokens: int = 400
    temperature: float | None = None


# --- stream events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call as it streams (useful for logs; the loop waits for complete)."""

    index: int
    id: str | None
    name: str | None
    arguments_fragment: str


@dataclass(frozen=True, slots=True)
class ToolCallComplete:
    call: ToolCall


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Done:
    finish_reason: str | None
    """Normalised: ``stop`` | ``tool_calls`` | ``length`` | the vendor's own word otherwise."""
    usage: Usage = field(default_factory=Usage)


StreamEvent = TextDelta | ToolCallDelta | ToolCallComplete | Done


# --- errors -------------------------------------------------------------------------------------

ErrorKind = Literal[
    "connect",
    "timeout",
    "rate_limited",
    "server",
    "auth",
    "bad_request",
    "protocol",
    "disconnected",
    "overloaded",
]


class LLMError(IvrBridgeError):
    """A provider failed; ``retryable`` says whether the same request may succeed if re-sent."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
    ) -> None:
        super().__init__(f"{kind}: {message}" + (f" (HTTP {status})" if status else ""))
        self.kind = kind
        self.message = message
        self.retryable = retryable
        self.status = status


class LLMTimeout(LLMError):
    """Connect, first-token or idle timeout: the stream went quiet for too long."""

    def __init__(self, stage: Literal["connect", "first_token", "idle"], seconds: float) -> None:
        super().__init__(
            "timeout", f"no {stage.replace('_', ' ')} within {seconds:g}s", retryable=True
        )
        self.stage = stage


def error_for_status(status: int, message: str) -> LLMError:
    """The typed error for an HTTP status; 408/409/429/5xx are worth a bounded retry."""
    if status in (401, 403):
        return LLMError("auth", message, retryable=False, status=status)
    if status == 429:
        return LLMError("rate_limited", message, retryable=True, status=status)
    if status == 529:
        return LLMError("overloaded", message, retryable=True, status=status)
    if status >= 500 or status in (408, 409):
        return LLMError("server", message, retryable=True, status=status)
    return LLMError("bad_request", message, retryable=False, status=status)
