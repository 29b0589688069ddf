"""Someone else's Media Streams bot, written for the tester's tests and sharing no code with the
bridge: it never sends marks, paces its own audio (20 ms or 1 s frames), stops or ``clear``s
when the caller talks over it, and answers after a scripted delay. It keeps its own log of when
its audio plays at the caller, on the call's clock, which is the ground truth the tester's
measurements are held against.

Its clock: the call's time is the ``timestamp`` of the caller's media (ms since the stream
began); the bot maps its wall clock onto it by the smallest (wall - timestamp) offset seen, the
least-delayed frame on loopback. What it sent plays from when it arrives, back to back: so an
utterance is heard from the call time its first frame was sent until the end of the audio it had
sent, or until its ``clear``.
"""

from __future__ import annotations

import asyncio
import audioop
import base64
import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import WSMsgType, web

RATE = 8000
SPEECH_RMS = 500
"""Caller audio louder than this (16-bit RMS over a 20 ms frame) is speech to this bot."""
END_OF_SPEECH_MS = 300


def tone_ulaw(duration_ms: int) -> bytes:
    """A voiced-sounding test signal: 220 Hz with a slow swell, never near silence."""
    samples = []
    for n in range(duration_ms * RATE // 1000):
        t = n / RATE
        envelope = 0.65 + 0.35 * math.sin(2 * math.pi * 3 * t)
        samples.append(int(9000 * envelope * math.sin(2 * math.pi * 220 * t)))
    pcm = b"".join(s.to_bytes(2, "little", signed=True) for s in samples)
    return audioop.lin2ulaw(pcm, 2)


@dataclass
class Heard:
    """One utterance as the bot knows the caller hears it (call ms)."""

    start_ms: float
    end_ms: float
    cut: bool = False


@dataclass
class BotLog:
    utterances: list[Heard] = field(default_factory=list)
    caller_onsets_ms: list[float] = field(default_factory=list)
    caller_ends_ms: list[float] = field(default_factory=list)
    arrivals: list[tuple[float, float]] = field(default_factory=list)
    """(wall ms, media timestamp) of every caller frame, in arrival order."""


@dataclass
class BotScript:
    frame_ms: int = 20
    """Audio per media message (1000: a second at a time, sent when it is due)."""
    on_barge_in: Literal["stop", "clear"] = "stop"
    yield_delay_ms: int = 120
    """Caller onset detected → the bot stops (or clears)."""
    reply_delay_ms: int = 500
    """Caller end of speech detected → the reply starts."""
    greeting_ms: int = 2400
    reply_ms: int = 1000


class ForeignBot:
    def __init__(self, script: BotScript) -> None:
        self.script = script
        self.log = BotLog()
        self._offset_ms = math.inf
        self._runner: web.AppRunner | None = None
        self.url = ""

    def _now(self) -> float:
        """The call's clock (ms), from the caller's media timestamps."""
        return time.monotonic() * 1000 - self._offset_ms

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/media", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"ws://127.0.0.1:{self._runner.addresses[0][1]}/media"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        stream_sid = ""
        talking: asyncio.Task[None] | None = None
        voiced_until = -1.0
        in_speech = False
        reply_timer: asyncio.Task[None] | None = None
        yielding: set[asyncio.Task[None]] = set()
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            data: dict[str, Any] = json.loads(msg.data)
            event = data.get("event")
            if event == "start":
                stream_sid = data["start"]["streamSid"]
            elif event == "media":
                stamp = float(data["media"]["timestamp"])
                self.log.arrivals.append((time.monotonic() * 1000, stamp))
                self._offset_ms = min(self._offset_ms, time.monotonic() * 1000 - stamp)
                if talking is None and not self.log.utterances:
                    talking = asyncio.create_task(
                        self._speak(ws, stream_sid, self.script.greeting_ms)
                    )
                pcm = audioop.ulaw2lin(base64.b64decode(data["media"]["payload"]), 2)
                loud = audioop.rms(pcm, 2) > SPEECH_RMS
                if loud:
                    voiced_until = stamp + 20
                    if not in_speech:
                        in_speech = True
                        self.log.caller_onsets_ms.append(stamp)
                        if reply_timer is not None:
                            reply_timer.cancel()
                        if talking is not None and not talking.done():
                            task = asyncio.create_task(self._yield(ws, stream_sid, talking))
                            yielding.add(task)
                            task.add_done_callback(yielding.discard)
                elif in_speech and stamp - voiced_until >= END_OF_SPEECH_MS:
                    in_speech = False
                    self.log.caller_ends_ms.append(voiced_until)
                    reply_timer = asyncio.create_task(self._reply_later(ws, stream_sid))
            elif event == "stop":
                break
        for pending in (talking, reply_timer, *yielding):
            if pending is not None:
                pending.cancel()
        return ws

    async def _reply_later(self, ws: web.WebSocketResponse, stream_sid: str) -> None:
        await asyncio.sleep(self.script.reply_delay_ms / 1000)
        await self._speak(ws, stream_sid, self.script.reply_ms)

    async def _yield(
        self, ws: web.WebSocketResponse, stream_sid: str, talking: asyncio.Task[None]
    ) -> None:
        await asyncio.sleep(self.script.yield_delay_ms / 1000)
        talking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await talking
        if self.script.on_barge_in == "clear" and self.log.utterances:
            await ws.send_str(json.dumps({"event": "clear", "streamSid": stream_sid}))
            heard = self.log.utterances[-1]
            now = self._now()
            if now < heard.end_ms:
                heard.end_ms, heard.cut = now, True

    async def _speak(self, ws: web.WebSocketResponse, stream_sid: str, duration_ms: int) -> None:
        """Send ``duration_ms`` of audio, one frame when it is due; log when it plays."""
        audio = tone_ulaw(duration_ms)
        step = self.script.frame_ms * RATE // 1000
        heard = Heard(self._now(), self._now())
        self.log.utterances.append(heard)
        due = time.monotonic()
        for offset in range(0, len(audio), step):
            chunk = audio[offset : offset + step]
            await ws.send_str(
                json.dumps(
                    {
                        "event": "media",
                        "streamSid": stream_sid,
                        "media": {"payload": base64.b64encode(chunk).decode()},
                    }
                )
            )
            # Played back to back from the first arrival: the end moves by what was sent.
            heard.end_ms = max(heard.end_ms, self._now()) + len(chunk) / 8
            due += len(chunk) / RATE
            await asyncio.sleep(max(0.0, due - time.monotonic()))
