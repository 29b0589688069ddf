"""A small scripted media-stream server for driving the simulated caller in tests.

It serves the three Twilio-facing endpoints like a bridge would (voice webhook TwiML, the media
WebSocket, the ``<Connect action>`` URL), records everything the caller sent, and runs a test's
``behaviour`` coroutine on each stream to send media, marks and clears on cue.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from twilio.twiml.voice_response import Connect, Dial, VoiceResponse

from ivr_bridge.audio.codec import pcm16_to_ulaw

AUTH_TOKEN = "test-auth-token-0123456789abcdef"
SPEED = 20.0
"""Virtual clock speed for simulated calls (conftest modules clash by name, so not there)."""


def tone(ms: int, freq: float = 440.0, amplitude: int = 8000) -> bytes:
    """µ-law sine tone: unmistakable bot audio in the heard channel."""
    n = ms * 8
    pcm = struct.pack(
        f"<{n}h", *(int(amplitude * math.sin(2 * math.pi * freq * i / 8000)) for i in range(n))
    )
    return pcm16_to_ulaw(pcm)


@dataclass
class Peer:
    """The server side of one stream, as a behaviour sees it."""

    ws: web.WebSocketResponse
    received: list[dict[str, Any]] = field(default_factory=list)
    stream_sid: str = ""
    closed: bool = False
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def media_count(self) -> int:
        return sum(1 for m in self.received if m.get("event") == "media")

    def of(self, event: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m.get("event") == event]

    async def wait_until(self, predicate: Callable[[], bool], limit_s: float = 10.0) -> None:
        async with asyncio.timeout(limit_s):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_media(self, count: int) -> None:
        target = self.media_count() + count
        await self.wait_until(lambda: self.media_count() >= target)

    async def wait_echo(self, name: str) -> None:
        await self.wait_until(lambda: any(m["mark"]["name"] == name for m in self.of("mark")))

    async def send_media(self, ulaw: bytes, chunk: int = 1600) -> None:
        for i in range(0, len(ulaw), chunk):
            payload = base64.b64encode(ulaw[i : i + chunk]).decode()
            await self.ws.send_str(
                json.dumps(
                    {"event": "media", "streamSid": self.stream_sid, "media": {"payload": payload}}
                )
            )

    async def send_mark(self, name: str) -> None:
        await self.ws.send_str(
            json.dumps({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})
        )

    async def send_clear(self) -> None:
        await self.ws.send_str(json.dumps({"event": "clear", "streamSid": self.stream_sid}))

    async def close(self) -> None:
        await self.ws.close()


Behaviour = Callable[[Peer], Awaitable[None]]


async def _idle(peer: Peer) -> None:
    await peer.wait_until(lambda: peer.closed, limit_s=60)


class FakeBridge:
    """Serves /twilio/voice, /twilio/media and /twilio/after-stream on 127.0.0.1:<free port>."""

    def __init__(
        self,
        behaviour: Behaviour = _idle,
        *,
        parameters: dict[str, str] | None = None,
        after_stream: str | None = None,
        with_action: bool = True,
    ) -> None:
        self.behaviour = behaviour
        self.parameters = parameters if parameters is not None else {"tenant": "acme", "lang": "en"}
        self.after_stream = after_stream or hangup_twiml()
        self.with_action = with_action
        self.voice_requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.action_requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.upgrade_headers: list[dict[str, str]] = []
        self.peers: list[Peer] = []
        self._runner: web.AppRunner | None = None
        self.base = ""

    @property
    def voice_url(self) -> str:
        return f"{self.base}/twilio/voice"

    @property
    def media_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/twilio/media"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/twilio/voice", self._voice)
        app.router.add_get("/twilio/media", self._media)
        app.router.add_post("/twilio/after-stream", self._after)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _voice(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.voice_requests.append((str(request.url), form, dict(request.headers)))
        response = VoiceResponse()
        connect = Connect(action="/twilio/after-stream" if self.with_action else None)
        stream = connect.stream(url=self.media_url)
        for name, value in self.parameters.items():
            stream.parameter(name=name, value=value)
        response.append(connect)
        return web.Response(text=str(response), content_type="text/xml")

    async def _after(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.action_requests.append((str(request.url), form, dict(request.headers)))
        return web.Response(text=self.after_stream, content_type="text/xml")

    async def _media(self, request: web.Request) -> web.WebSocketResponse:
        self.upgrade_headers.append(dict(request.headers))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        peer = Peer(ws)
        self.peers.append(peer)
        behaviour: asyncio.Task[None] | None = None
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                peer.received.append(data)
                if data.get("event") == "start" and behaviour is None:
                    peer.stream_sid = data["streamSid"]
                    behaviour = asyncio.create_task(self.behaviour(peer))
                peer._changed.set()
                if behaviour is not None and behaviour.done():
                    behaviour.result()  # surface a failing behaviour in the test
        finally:
            peer.closed = True
            peer._changed.set()
            if behaviour is not None:
                if not behaviour.done():
                    await asyncio.wait({behaviour}, timeout=1)
                behaviour.cancel()
        return ws


def hangup_twiml() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response)


def dial_twiml(number: str) -> str:
    response = VoiceResponse()
    response.append(Dial(number=number))
    return str(response)
