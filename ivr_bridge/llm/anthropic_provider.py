"""Anthropic Messages streaming through the official SDK (``AsyncAnthropic``).

The SDK speaks the wire (named SSE events: ``message_start``, ``content_block_start/delta/stop``,
``message_delta``, ``message_stop``, ``ping``, ``error``); this adapter maps its raw events to
ours. SDK retries are off (``max_retries=0``): the dialog owns retry policy, because only it knows
whether text was already spoken. First-token and idle timeouts are ours, like the OpenAI wire's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import anthropic

from ivr_bridge.llm.history import render_interrupted
from ivr_bridge.llm.provider import ToolCallAssembler
from ivr_bridge.llm.types import (
    AssistantMessage,
    ChatRequest,
    Done,
    LLMError,
    LLMTimeout,
    StreamEvent,
    TextDelta,
    ToolCallComplete,
    ToolCallDelta,
    ToolResultMessage,
    Usage,
    UserMessage,
    error_for_status,
)

_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
}
_ERROR_TYPES = {
    "overloaded_error": 529,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "authentication_error": 401,
    "permission_error": 403,
    "invalid_request_error": 400,
    "not_found_error": 404,
    "request_too_large": 413,
}
CALL_CONNECTED = "(The call has connected.)"
"""Anthropic wants the first message to be the user's; a dialog that greets first gets this."""


def render_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """Our messages as Anthropic ``messages``: tool results ride in user turns, same-role
    neighbours are merged (all results of one tool round must share one user message)."""
    out: list[dict[str, Any]] = []
    for message in request.messages:
        blocks: list[dict[str, Any]]
        if isinstance(message, UserMessage):
            role, blocks = "user", [{"type": "text", "text": message.text}]
        elif isinstance(message, ToolResultMessage):
            role = "user"
            blocks = [
                {
                    "type": "tool_result",
                    "tool_use_id": message.tool_call_id,
                    "content": message.content,
                    **({"is_error": True} if message.is_error else {}),
                }
            ]
        else:
            assert isinstance(message, AssistantMessage)
            role, blocks = "assistant", _assistant_blocks(message)
            if not blocks:
                continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    if out and out[0]["role"] == "assistant":
        out.insert(0, {"role": "user", "content": [{"type": "text", "text": CALL_CONNECTED}]})
    return out


def _assistant_blocks(message: AssistantMessage) -> list[dict[str, Any]]:
    text = render_interrupted(message.text) if message.interrupted else message.text
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    blocks.extend(
        {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
        for c in message.tool_calls
    )
    return blocks


class AnthropicProvider:
    name = "anthropic"

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None,
        base_url: str | None = None,
        connect_timeout_s: float = 3.0,
        first_token_timeout_s: float = 4.0,
        idle_timeout_s: float = 2.0,
    ) -> None:
        self.model = model
        self._first_token_timeout_s = first_token_timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key or "unset",
            base_url=base_url,
            max_retries=0,
            timeout=anthropic.Timeout(None, connect=connect_timeout_s),
        )

    async def close(self) -> None:
        await self._client.close()

    def params(self, request: ChatRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": render_messages(request),
        }
        if request.system:
            params["system"] = request.system
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.tools:
            params["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
        return params

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        deadline = time.monotonic() + self._first_token_timeout_s
        try:
            stream = await asyncio.wait_for(
                self._client.messages.create(**self.params(request), stream=True),
                timeout=self._first_token_timeout_s,
            )
        except TimeoutError:
            raise LLMTimeout("first_token", self._first_token_timeout_s) from None
        except anthropic.APIError as exc:
            raise _typed(exc) from None
        try:
            async for event in self._events(stream, deadline):
                yield event
        finally:
            await stream.close()

    async def _events(self, stream: Any, deadline: float) -> AsyncIterator[StreamEvent]:
        calls = ToolCallAssembler()
        started = False
        stop: str | None = None
        usage = Usage()
        iterator = stream.__aiter__()
        while True:
            limit = self._idle_timeout_s if started else self._first_token_timeout_s
            wait = self._idle_timeout_s if started else max(0.0, deadline - time.monotonic())
            try:
                event = await asyncio.wait_for(iterator.__anext__(), timeout=wait)
            except StopAsyncIteration:
                raise LLMError(
                    "disconnected", "stream ended before message_stop", retryable=True
                ) from None
            except TimeoutError:
                raise LLMTimeout("idle" if started else "first_token", limit) from None
            except anthropic.APIError as exc:
                raise _typed(exc) from None
            kind = event.type
            if kind == "message_start":
                usage = Usage(event.message.usage.input_tokens, event.message.usage.output_tokens)
            elif kind == "content_block_start":
                block = event.content_block
                if block.type == "tool_use":
                    started = True
                    calls.add(event.index, block.id, block.name, "")
                    yield ToolCallDelta(event.index, block.id, block.name, "")
                elif block.type == "text" and block.text:
                    started = True
                    yield TextDelta(block.text)
            elif kind == "content_block_delta":
                delta = event.delta
                if delta.type == "text_delta" and delta.text:
                    started = True
                    yield TextDelta(delta.text)
                elif delta.type == "input_json_delta":
                    calls.add(event.index, None, None, delta.partial_json)
                    yield ToolCallDelta(event.index, None, None, delta.partial_json)
            elif kind == "content_block_stop":
                if calls.has(event.index):
                    yield ToolCallComplete(calls.complete(event.index))
            elif kind == "message_delta":
                stop = event.delta.stop_reason or stop
                if event.usage is not None:
                    usage = Usage(usage.input_tokens, event.usage.output_tokens)
            elif kind == "message_stop":
                yield Done(_STOP.get(stop or "", stop), usage)
                return


def _typed(exc: anthropic.APIError) -> LLMError:
    if isinstance(exc, anthropic.APITimeoutError):
        return LLMError("timeout", "request timed out", retryable=True)
    if isinstance(exc, anthropic.APIConnectionError):
        return LLMError("connect", f"cannot reach the Anthropic endpoint: {exc}", retryable=True)
    if isinstance(exc, anthropic.APIStatusError):
        message, error_type = _body_error(exc.body)
        status = exc.status_code
        if status == 200 and error_type:  # an ``error`` event inside a 200 stream
            status = _ERROR_TYPES.get(error_type, 500)
        return error_for_status(status, message or str(exc.message))
    return LLMError("protocol", str(exc), retryable=False)


def _body_error(body: object) -> tuple[str | None, str | None]:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return (str(error.get("message") or "") or None, error.get("type"))
    return None, None
