"""The provider interface the dialog depends on, and the tool-call assembler both wires share."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from ivr_bridge.llm.types import ChatRequest, LLMError, StreamEvent, ToolCall


class LLMProvider(Protocol):
    name: str

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Stream one completion. Raises ``LLMError`` (typed, with ``retryable``); cancelling the
        iteration (or ``aclose``) drops the HTTP stream at once."""
        ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _PartialCall:
    id: str = ""
    name: str = ""
    fragments: list[str] = field(default_factory=list)


class ToolCallAssembler:
    """Joins streamed tool-call fragments (by index) into complete calls.

    Vendors send the id and name once and the JSON arguments in arbitrary slices; a call is
    complete only when the response finishes (OpenAI) or its block stops (Anthropic).
    """

    def __init__(self) -> None:
        self._calls: dict[int, _PartialCall] = {}

    def add(self, index: int, id: str | None, name: str | None, fragment: str) -> None:
        call = self._calls.setdefault(index, _PartialCall())
        if id:
            call.id = id
        if name and not call.name:
            call.name = name
        if fragment:
            call.fragments.append(fragment)

    def has(self, index: int) -> bool:
        return index in self._calls

    def complete(self, index: int) -> ToolCall:
        call = self._calls.pop(index)
        return _finish(index, call)

    def complete_all(self) -> list[ToolCall]:
        done = [_finish(i, self._calls[i]) for i in sorted(self._calls)]
        self._calls.clear()
        return done


def _finish(index: int, call: _PartialCall) -> ToolCall:
    if not call.name:
        raise LLMError("protocol", f"tool call #{index} has no function name", retryable=True)
    raw = "".join(call.fragments)
    try:
        parsed = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        raise LLMError(
            "protocol", f"tool call {call.name!r} arguments are not JSON: {exc}", retryable=True
        ) from None
    if not isinstance(parsed, dict):
        raise LLMError(
            "protocol", f"tool call {call.name!r} arguments are not an object", retryable=True
        )
    return ToolCall(call.id or f"call_{index}", call.name, parsed, raw or "{}")
