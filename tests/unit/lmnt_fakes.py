"""A scripted fake LMNT speech-session server for client tests.

Each test passes a script: an async function that receives a ``ScriptedConnection`` and plays the
server's side (read what the client sent, send JSON/audio, close with a code). Everything the
client sent is recorded, so tests assert on the wire, not on the client's internals.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve

# The fake server's own frame dumps would contain the test API key; keep them out of captured logs
# so the "key never logged" test only sees what the client logs.
_SERVER_LOGGER = logging.getLogger("tests.fake_lmnt.server")
_SERVER_LOGGER.setLevel(logging.WARNING)


class ScriptedConnection:
    """The server side of one session, as seen by a script."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []

    @property
    def path(self) -> str:
        assert self.ws.request is not None
        return self.ws.request.path

    @property
    def request_headers(self) -> dict[str, str]:
        assert self.ws.request is not None
        return {k.lower(): v for k, v in self.ws.request.headers.raw_items()}

    async def expect(self, msg_type: str) -> dict[str, Any]:
        """Read the next client message and check its type (init has ``type:"init"``)."""
        raw = await self.ws.recv()
        assert isinstance(raw, str), f"client sent a binary frame: {raw!r}"
        message: dict[str, Any] = json.loads(raw)
        self.received.append(message)
        assert message.get("type") == msg_type, f"expected {msg_type}, got {message}"
        return message

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def send_audio(self, data: bytes) -> None:
        await self.ws.send(data)

    async def ready(self, request_id: str = "req_fake") -> dict[str, Any]:
        """Read init, answer ready: the usual opening."""
        init = await self.expect("init")
        await self.send_json({"type": "ready", "request_id": request_id})
        return init

    async def timestamps(self, *words: tuple[str, float, float]) -> None:
        await self.send_json(
            {
                "type": "timestamps",
                "timestamps": [{"text": t, "start": s, "duration": d} for t, s, d in words],
            }
        )

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code, reason)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        self.ws.transport.abort()


Script = Callable[[ScriptedConnection], Awaitable[None]]


class FakeLmntServer:
    """``async with FakeLmntServer(script) as server:`` then connect to ``server.base_url``."""

    def __init__(self, script: Script) -> None:
        self._script = script
        self._server: Server | None = None
        self.connections: list[ScriptedConnection] = []
        self.script_errors: list[BaseException] = []
        self.script_done = asyncio.Event()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = next(iter(self._server.sockets)).getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def connection(self) -> ScriptedConnection:
        assert len(self.connections) == 1, self.connections
        return self.connections[0]

    async def _handle(self, ws: ServerConnection) -> None:
        conn = ScriptedConnection(ws)
        self.connections.append(conn)
        try:
            await self._script(conn)
        except BaseException as exc:  # surfaced by __aexit__ so a broken script fails the test
            self.script_errors.append(exc)
            raise
        finally:
            self.script_done.set()

    async def __aenter__(self) -> FakeLmntServer:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, compression=None, logger=_SERVER_LOGGER
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        real_errors = [e for e in self.script_errors if not isinstance(e, asyncio.CancelledError)]
        if real_errors and exc_info[0] is None:
            raise real_errors[0]


async def wait_until(predicate: Callable[[], bool], limit_s: float = 5.0) -> None:
    """Poll a condition the test cannot await directly (e.g. frames queued but not consumed)."""
    async with asyncio.timeout(limit_s):
        while not predicate():  # noqa: ASYNC110 - no event exists for "the receive loop queued N"
            await asyncio.sleep(0.005)
