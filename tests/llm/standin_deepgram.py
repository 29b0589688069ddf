"""A stand-in for Deepgram's live ``/v1/listen`` WebSocket, faithful to its documented shapes.

Checks ``Authorization: Token <key>`` at the handshake (401 with a ``dg-error`` header
otherwise), takes binary audio frames, and on ``{"type": "CloseStream"}`` answers the scripted
transcript as a ``Results`` message (``is_final``/``speech_final``, ``channel.alternatives``),
then the closing ``Metadata`` message, then closes the socket normally.
"""

from __future__ import annotations

import json
import uuid
from collections import deque
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response


class DeepgramStandIn:
    def __init__(self, api_key: str = "dg-test-key") -> None:
        self.api_key = api_key
        self.transcripts: deque[str] = deque()
        self.audio: list[bytes] = []
        self.queries: list[dict[str, list[str]]] = []
        self._server: Server | None = None
        self.url = ""

    async def start(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", 0, process_request=self._check_auth)
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/v1/listen"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _check_auth(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Authorization") != f"Token {self.api_key}":
            response = connection.respond(HTTPStatus.UNAUTHORIZED, "Invalid credentials.\n")
            response.headers["dg-error"] = "Invalid credentials."
            return response
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path).query) if ws.request else {}
        self.queries.append(query)
        received = bytearray()
        request_id = str(uuid.uuid4())
        async for message in ws:
            if isinstance(message, bytes):
                received.extend(message)
                continue
            control = json.loads(message)
            if control.get("type") == "CloseStream":
                break
        self.audio.append(bytes(received))
        seconds = len(received) / 8000
        transcript = self.transcripts.popleft() if self.transcripts else ""
        await ws.send(json.dumps(_results(transcript, seconds, request_id)))
        await ws.send(json.dumps(_metadata(seconds, request_id)))
        await ws.close(1000)


def _results(transcript: str, seconds: float, request_id: str) -> dict[str, Any]:
    words = transcript.split()
    step = seconds / max(1, len(words))
    return {
        "type": "Results",
        "channel_index": [0, 1],
        "duration": seconds,
        "start": 0.0,
        "is_final": True,
        "speech_final": True,
        "from_finalize": False,
        "channel": {
            "alternatives": [
                {
                    "transcript": transcript,
                    "confidence": 0.97 if words else 0.0,
                    "words": [
                        {
                            "word": w.strip(".,?!").lower(),
                            "start": i * step,
                            "end": (i + 1) * step,
                            "confidence": 0.97,
                            "punctuated_word": w,
                        }
                        for i, w in enumerate(words)
                    ],
                }
            ]
        },
        "metadata": {
            "request_id": request_id,
            "model_info": {"name": "general-nova-3", "version": "2024-01-01", "arch": "nova-3"},
            "model_uuid": str(uuid.uuid4()),
        },
    }


def _metadata(seconds: float, request_id: str) -> dict[str, Any]:
    return {
        "type": "Metadata",
        "transaction_key": "deprecated",
        "request_id": request_id,
        "sha256": "0" * 64,
        "created": "2026-01-01T00:00:00.000Z",
        "duration": seconds,
        "channels": 1,
    }
