"""Streaming chat completions against any OpenAI-compatible server, over aiohttp.

One wire covers OpenAI, Groq, vLLM, Ollama and llama.cpp: ``POST {base}/chat/completions`` with
``stream: true`` answers ``text/event-stream`` chunks ``data: {choices: [{delta: ...}]}`` ending in
``data: [DONE]``. Tool calls arrive as ``delta.tool_calls`` fragments keyed by ``index`` (id and
name once, arguments sliced anywhere). Timeouts are ours, not aiohttp's total timeout: connect,
first token (nothing useful since the request was sent) and idle (gap between chunks).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from ivr_bridge.http_util import read_limited
from ivr_bridge.llm.history import render_interrupted
from ivr_bridge.llm.provider import ToolCallAssembler
from ivr_bridge.llm.sse import SseParser
from ivr_bridge.llm.types import (
    AssistantMessage,
    ChatRequest,
    Done,
    LLMError,
    LLMTimeout,
    Message,
    StreamEvent,
    TextDelta,
    ToolCallComplete,
    ToolCallDelta,
    ToolResultMessage,
    Usage,
    UserMessage,
    error_for_status,
)

_FINISH = {"stop": "stop", "tool_calls": "tool_calls", "function_call": "tool_calls"}


def render_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """Our messages in the chat.completions shape."""
    out: list[dict[str, Any]] = []
    if request.system:
        out.append({"role": "system", "content": request.system})
    for message in request.messages:
        out.append(_render(message))
    return out


def _render(message: Message) -> dict[str, Any]:
    if isinstance(message, UserMessage):
        return {"role": "user", "content": message.text}
    if isinstance(message, ToolResultMessage):
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    assert isinstance(message, AssistantMessage)
    text = render_interrupted(message.text) if message.interrupted else message.text
    rendered: dict[str, Any] = {"role": "assistant", "content": text or None}
    if message.tool_calls:
        rendered["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.raw_arguments or "{}"},
            }
            for call in message.tool_calls
        ]
    return rendered


class OpenAICompatibleProvider:
    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        connect_timeout_s: float = 3.0,
        first_token_timeout_s: float = 4.0,
        idle_timeout_s: float = 2.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self._api_key = api_key
        self._connect_timeout_s = connect_timeout_s
        self._first_token_timeout_s = first_token_timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._session = session
        self._owns_session = session is None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(
                total=None, connect=self._connect_timeout_s, sock_connect=self._connect_timeout_s
            )
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()

    def body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": render_messages(request),
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": request.max_tokens,
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in request.tools
            ]
        return body

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        headers = {"Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        deadline = time.monotonic() + self._first_token_timeout_s
        try:
            response = await asyncio.wait_for(
                self._http().post(self.url, json=self.body(request), headers=headers),
                timeout=self._first_token_timeout_s,
            )
        except TimeoutError:
            raise LLMTimeout("first_token", self._first_token_timeout_s) from None
        except aiohttp.ClientConnectorError as exc:
            raise LLMError(
                "connect", f"cannot reach {self.url}: {exc.os_error}", retryable=True
            ) from None
        except aiohttp.ClientError as exc:
            raise LLMError("connect", f"{type(exc).__name__}: {exc}", retryable=True) from None
        async with response:
            if response.status != 200:
                raise error_for_status(response.status, await _error_message(response))
            async for event in self._events(response, deadline):
                yield event

    async def _events(
        self, response: aiohttp.ClientResponse, deadline: float
    ) -> AsyncIterator[StreamEvent]:
        parser = SseParser()
        calls = ToolCallAssembler()
        started = False
        finish: str | None = None
        usage = Usage()
        while True:
            if started:
                wait, stage = self._idle_timeout_s, "idle"
            else:
                wait, stage = max(0.0, deadline - time.monotonic()), "first_token"
            try:
                line = await asyncio.wait_for(response.content.readline(), timeout=wait)
            except TimeoutError:
                limit = self._idle_timeout_s if started else self._first_token_timeout_s
                raise LLMTimeout(stage, limit) from None  # type: ignore[arg-type]
            except aiohttp.ClientError as exc:
                raise LLMError("disconnected", f"stream broke: {exc}", retryable=True) from None
            at_eof = not line
            sse = parser.finish() if at_eof else parser.feed_line(line.decode("utf-8", "replace"))
            if sse is not None:
                if sse.data.strip() == "[DONE]":
                    for call in calls.complete_all():
                        yield ToolCallComplete(call)
                    yield Done(_FINISH.get(finish or "", finish), usage)
                    return
                chunk = _parse_json(sse.data)
                if "error" in chunk:
                    raise _stream_error(chunk["error"])
                try:
                    events, chunk_finish, chunk_usage = _chunk_events(chunk, calls)
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    raise LLMError(
                        "protocol",
                        f"malformed stream chunk: {type(exc).__name__}: {exc}",
                        retryable=False,
                    ) from None
                usage = chunk_usage or usage
                finish = chunk_finish or finish
                for event in events:
                    started = True
                    yield event
            if at_eof:
                if finish is not None:  # some servers end without [DONE]; the answer is whole
                    for call in calls.complete_all():
                        yield ToolCallComplete(call)
                    yield Done(_FINISH.get(finish, finish), usage)
                    return
                raise LLMError("disconnected", "stream ended before [DONE]", retryable=True)


def _chunk_events(
    chunk: dict[str, Any], calls: ToolCallAssembler
) -> tuple[list[StreamEvent], str | None, Usage | None]:
    """Text and tool-call deltas, finish reason and usage of one chunk (may raise on bad shapes)."""
    usage = None
    if isinstance(chunk.get("usage"), dict):
        usage = Usage(chunk["usage"].get("prompt_tokens"), chunk["usage"].get("completion_tokens"))
    events: list[StreamEvent] = []
    finish: str | None = None
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if content:
            events.append(TextDelta(str(content)))
        for fragment in delta.get("tool_calls") or []:
            function = fragment.get("function") or {}
            index = int(fragment.get("index", 0))
            args = function.get("arguments") or ""
            calls.add(index, fragment.get("id"), function.get("name"), args)
            events.append(ToolCallDelta(index, fragment.get("id"), function.get("name"), args))
        if choice.get("finish_reason"):
            finish = str(choice["finish_reason"])
    return events, finish, usage


def _parse_json(data: str) -> dict[str, Any]:
    try:
        parsed = json.loads(data)
    except json.JSONDecodeError:
        raise LLMError(
            "protocol", f"stream chunk is not JSON: {data[:120]!r}", retryable=True
        ) from None
    if not isinstance(parsed, dict):
        raise LLMError("protocol", "stream chunk is not a JSON object", retryable=True)
    return parsed


def _stream_error(error: Any) -> LLMError:
    """An error object sent inside the stream (vLLM, OpenRouter, some proxies)."""
    if isinstance(error, dict):
        message = str(error.get("message") or error)
        code = error.get("code")
        status = code if isinstance(code, int) else None
        if status is not None:
            return error_for_status(status, message)
        return LLMError("server", message, retryable=True)
    return LLMError("server", str(error), retryable=True)


async def _error_message(response: aiohttp.ClientResponse) -> str:
    """The vendor's own words from an error body (``{"error": {"message": ...}}``), kept short."""
    try:
        text = (await read_limited(response.content, 8192)).decode("utf-8", "replace")
    except aiohttp.ClientError:
        return response.reason or "error"
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        return text.strip()[:300] or (response.reason or "error")
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])[:300]
    if isinstance(error, str):
        return error[:300]
    return text.strip()[:300]
