"""Stand-in LLM servers speaking the vendors' real streaming wires, on loopback.

``OpenAIStandIn`` answers ``POST /v1/chat/completions`` with ``text/event-stream`` chunks exactly
as OpenAI-compatible servers send them (role chunk, ``delta.content`` pieces, ``delta.tool_calls``
fragments keyed by index, a finish chunk, a usage chunk, ``data: [DONE]``) or with the vendors'
JSON error bodies. ``AnthropicStandIn`` answers ``POST /v1/messages`` with Anthropic's named
events (``message_start``, ``content_block_*``, ``ping``, ``message_delta``, ``message_stop``,
``error``). Both record every request body so tests can assert the history the model was given.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Reply:
    """One scripted completion."""

    text: Sequence[str] = ()
    tool_calls: Sequence[tuple[str, str, Sequence[str]]] = ()
    """(id, name, argument fragments as the vendor would slice them)."""
    first_delay_s: float = 0.0
    """Wait after the headers (and role chunk) before the first token: a slow model."""
    chunk_delay_s: float = 0.0
    status: int = 200
    error_type: str = "server_error"
    error_message: str = "The server had an error while processing your request."
    error_after: int | None = None
    """Send an in-stream error event after this many text pieces."""
    disconnect_after: int | None = None
    """Drop the connection after this many text pieces (no finish, no [DONE])."""
    raw_after: int | None = None
    """Send ``raw_data`` as one SSE ``data:`` line after this many text pieces (a broken proxy)."""
    raw_data: str = ""


@dataclass
class _Recorded:
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


class _StandIn:
    path = ""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.recorded = _Recorded()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.disconnected = 0

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return self.recorded.bodies

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.recorded.bodies.append(await request.json())
        self.recorded.headers.append({k.lower(): v for k, v in request.headers.items()})
        reply = self.replies.popleft() if self.replies else Reply(text=["Okay."])
        if reply.status != 200:
            return web.json_response(self.error_body(reply), status=reply.status)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        try:
            await self.stream(request, response, reply)
        except ConnectionResetError:
            self.disconnected += 1  # the client hung up mid-answer (a barge-in or a timeout)
        return response

    def error_body(self, reply: Reply) -> dict[str, Any]:
        raise NotImplementedError

    async def stream(
        self, request: web.Request, response: web.StreamResponse, reply: Reply
    ) -> None:
        raise NotImplementedError

    async def _drop(self, request: web.Request) -> None:
        if request.transport is not None:
            request.transport.abort()


class OpenAIStandIn(_StandIn):
    path = "/v1/chat/completions"

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    def error_body(self, reply: Reply) -> dict[str, Any]:
        return {
            "error": {
                "message": reply.error_message,
                "type": reply.error_type,
                "param": None,
                "code": None,
            }
        }

    async def stream(
        self, request: web.Request, response: web.StreamResponse, reply: Reply
    ) -> None:
        body = self.recorded.bodies[-1]
        model = body.get("model", "stand-in")

        async def send(data: object) -> None:
            payload = data if isinstance(data, str) else json.dumps(data)
            await response.write(f"data: {payload}\n\n".encode())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": "chatcmpl-standin",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": model,
                "system_fingerprint": None,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }

        await send(chunk({"role": "assistant", "content": ""}))
        await asyncio.sleep(reply.first_delay_s)
        for i, piece in enumerate(reply.text):
            if reply.disconnect_after == i:
                await self._drop(request)
                return
            if reply.error_after == i:
                await send({"error": {"message": reply.error_message, "type": reply.error_type}})
                return
            if reply.raw_after == i:
                await send(reply.raw_data)
            await send(chunk({"content": piece}))
            await asyncio.sleep(reply.chunk_delay_s)
        for index, (call_id, name, fragments) in enumerate(reply.tool_calls):
            head = {"index": index, "id": call_id, "type": "function"}
            await send(
                chunk({"tool_calls": [{**head, "function": {"name": name, "arguments": ""}}]})
            )
            for fragment in fragments:
                await send(
                    chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
                )
        finish = "tool_calls" if reply.tool_calls else "stop"
        await send(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49}
            await send({**chunk({}), "choices": [], "usage": usage})
        await send("[DONE]")


class AnthropicStandIn(_StandIn):
    path = "/v1/messages"

    def error_body(self, reply: Reply) -> dict[str, Any]:
        kind = {429: "rate_limit_error", 529: "overloaded_error", 401: "authentication_error"}
        return {
            "type": "error",
            "error": {"type": kind.get(reply.status, "api_error"), "message": reply.error_message},
        }

    async def stream(
        self, request: web.Request, response: web.StreamResponse, reply: Reply
    ) -> None:
        body = self.recorded.bodies[-1]

        async def send(event: str, data: dict[str, Any]) -> None:
            await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

        message = {
            "id": "msg_standin",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": body.get("model", "stand-in"),
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 42, "output_tokens": 1},
        }
        await send("message_start", {"type": "message_start", "message": message})
        await send("ping", {"type": "ping"})
        await asyncio.sleep(reply.first_delay_s)
        index = 0
        if reply.text:
            block = {"type": "text", "text": ""}
            await send(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": block},
            )
            for i, piece in enumerate(reply.text):
                if reply.disconnect_after == i:
                    await self._drop(request)
                    return
                if reply.error_after == i:
                    error = {"type": "overloaded_error", "message": reply.error_message}
                    await send("error", {"type": "error", "error": error})
                    return
                delta = {"type": "text_delta", "text": piece}
                await send(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
                await asyncio.sleep(reply.chunk_delay_s)
            await send("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        for call_id, name, fragments in reply.tool_calls:
            tool_block: dict[str, Any] = {
                "type": "tool_use",
                "id": call_id,
                "name": name,
                "input": {},
            }
            await send(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": tool_block},
            )
            for fragment in fragments:
                delta = {"type": "input_json_delta", "partial_json": fragment}
                await send(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            await send("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        stop = "tool_use" if reply.tool_calls else "end_turn"
        await send(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 9},
            },
        )
        await send("message_stop", {"type": "message_stop"})
