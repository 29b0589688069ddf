"""The caller's end of a real phone call: Twilio streams the far end to us, and we talk back.

When the tester dials a number itself (``calls.create`` with ``<Connect><Stream>`` back to the
tester), the roles of :class:`~ivr_bridge.sim.twilio.session.StreamSession` turn round: Twilio is
the WebSocket client, the agent on the number is what arrives as ``media``, and the caller's voice
is what we send. Twilio plays what we send as it comes, so the caller's audio goes out one 20 ms
frame per line tick, as a person speaks; the far end's audio arrives paced by Twilio and is *heard*
one frame per tick, in arrival order, so the recording and every timing check see the call as the
caller's ear did (the same line clock, the same recorder as a simulated call).

Keys cannot be played into a stream. A ``press`` redirects the call (``<Play digits>`` then a
new ``<Connect><Stream>``, through ``press_keys``): the stream ends, the digits play on the
line, and a new stream with a new ``streamSid`` and the same ``CallSid`` follows. The line runs
across streams; while none is attached the caller hears nothing and sends nothing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import WSMsgType, web

from ivr_bridge.audio.codec import ULAW_BYTES_PER_MS
from ivr_bridge.sim.twilio import protocol
from ivr_bridge.sim.twilio.caller_side import CallEnded, CallerSide
from ivr_bridge.sim.twilio.clock import VirtualClock
from ivr_bridge.sim.twilio.session import StreamStats
from ivr_bridge.sim.twilio.tap import LineTap

log = structlog.get_logger(__name__)

INBOUND_MAX_FRAMES = 500
"""Far-end frames waiting to be heard (10 s): a bound, never reached while the line keeps up."""
_STREAM_BREAK = None
"""In the far end's frames: a stream ended here (a redirect), and a new one follows."""
KeyPresser = Callable[[str], Awaitable[None]]
"""Redirects the call to play one digit and stream back (the REST update)."""


class _Heard:
    """What the runner asks of a playout buffer: Twilio plays the far end live, so nothing is
    ever buffered on our side, and "playing" means the last frame heard was speech."""

    playing = False
    buffered_bytes = 0


class ServedCall(CallerSide):
    """One call the tester placed, across the streams Twilio opens for it."""

    def __init__(
        self,
        call_sid: str,
        clock: VirtualClock,
        recorder: LineTap,
        *,
        max_duration_ms: float,
        press_keys: KeyPresser | None = None,
    ) -> None:
        super().__init__()
        self.call_sid = call_sid
        self.clock = clock
        self.recorder = recorder
        self.max_duration_ms = max_duration_ms
        self._press_keys = press_keys
        self.stats = StreamStats()
        self.buffer = _Heard()
        self.line_ms = 0.0
        self.bot_frames_heard = 0
        self.last_bot_frame_end_ms: float | None = None
        self.closed_by: str | None = None
        """``server`` (the far end or Twilio ended it), ``caller``, ``max_duration``."""
        self.close_code: int | None = None
        self.streams = 0
        self._ws: web.WebSocketResponse | None = None
        self._stream_sid = ""
        self._attached = asyncio.Event()
        self._redirecting = False
        self._ending = False
        self._inbound: deque[bytes | None] = deque(maxlen=INBOUND_MAX_FRAMES)
        self._chunk = 0

    @property
    def ended(self) -> bool:
        return self._ending

    # --- what the caller does (the runner's session interface) ---------------------------------

    async def press(self, digit: str) -> float:
        """Redirect the call to play ``digit``; returns the call time it was sent at."""
        if self._press_keys is None:
            raise CallEnded("this call cannot send keys")
        if self._ending:
            raise CallEnded
        at = self.line_ms
        self._redirecting = True
        self._attached.clear()
        try:
            await self._press_keys(digit)
        except Exception as exc:
            self.recorder.event(self.line_ms, "warning", reason=f"keys not sent: {exc}")
            self._redirecting = False
            raise CallEnded(f"keys not sent: {exc}") from exc
        self.recorder.event(at, "digit", digit=digit)
        await self.wait_for(self._attached.is_set, timeout_ms=15_000)
        return at

    async def hangup(self, reason: str = "caller") -> None:
        """Close our stream: ``<Connect>`` ends, and the call's TwiML has nothing after it."""
        if self._ending:
            return
        self._ending = True
        self.closed_by = reason
        self.recorder.event(self.line_ms, "stop_sent", reason=reason)
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        self._wake()

    # --- the streams Twilio opens ---------------------------------------------------------------

    async def serve(self, ws: web.WebSocketResponse, start: dict[str, Any]) -> None:
        """Run one stream of this call (``start`` already read) until Twilio stops it."""
        self._ws, self._stream_sid = ws, str(start.get("streamSid", ""))
        self.streams += 1
        self._redirecting = False
        self._attached.set()
        parameters = (start.get("start") or {}).get("customParameters") or {}
        self.recorder.event(self.line_ms, "stream_started", parameters=parameters)
        self._wake()
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                if self._on_message(message.data) == "stop":
                    break
        finally:
            if self._ws is ws:
                self._ws = None
                self._attached.clear()
            if self._redirecting:
                # The stream stopped under the far end's words: what was being heard is cut
                # there (once the line has played what came before), and what the next stream
                # brings is another utterance, transcribed on its own.
                self._inbound.append(_STREAM_BREAK)
            self.close_code = ws.close_code
            if not self._redirecting and not self._ending:
                self._ending, self.closed_by = True, "server"
            self.recorder.event(self.line_ms, "stream_closed", by=self.closed_by, code=None)
            self._wake()

    def _on_message(self, data: str) -> str:
        try:
            message = json.loads(data)
            event = message["event"]
        except (ValueError, KeyError, TypeError):
            self.stats.protocol_errors += 1
            self.recorder.event(self.line_ms, "protocol_error", code=0, reason="not Twilio JSON")
            return ""
        if event == "media":
            try:
                ulaw = base64.b64decode(message["media"]["payload"], validate=True)
            except (KeyError, TypeError, binascii.Error):
                self.stats.protocol_errors += 1
                return ""
            self.stats.media_received += 1
            self.stats.bot_bytes_received += len(ulaw)
            self._inbound.append(ulaw)
        elif event == "mark":
            self.stats.marks_received += 1
            name = (message.get("mark") or {}).get("name", "")
            self.recorder.event(self.line_ms, "mark_echoed", name=name, cleared=False)
        elif event == "dtmf":
            digit = (message.get("dtmf") or {}).get("digit", "")
            self.recorder.event(self.line_ms, "far_end_digit", digit=digit)
        return str(event)

    # --- the line ---------------------------------------------------------------------------------

    async def answered(self) -> None:
        """Until the first stream starts (the far end picked up)."""
        await self._attached.wait()

    async def run(self) -> None:
        """Tick the line every 20 ms from the first stream until the call is over."""
        await self.answered()
        self.clock.start()
        t = 0.0
        while not self._ending:
            # The far end talks on the wall clock whatever we do: a late tick does not slip
            # call time (as a simulated line may), it catches up on the frames that came.
            await self.clock.sleep_until(t)
            lag = self.clock.now_ms() - t
            self.stats.max_tick_lag_ms = max(self.stats.max_tick_lag_ms, lag)
            if lag > protocol.FRAME_MS:
                self.stats.late_ticks += 1
            if t >= self.max_duration_ms:
                await self.hangup("max_duration")
                return
            heard = self._next_heard()
            caller = await self._send_caller_frame(t)
            frame = heard[: protocol.FRAME_BYTES].ljust(protocol.FRAME_BYTES, b"\xff")
            voiced = self.recorder.frame(t, caller, frame, len(heard))
            self.buffer.playing = voiced
            if voiced:
                self.bot_frames_heard += 1
                self.stats.bot_bytes_heard += len(heard)
                self.last_bot_frame_end_ms = t + len(heard) / ULAW_BYTES_PER_MS
            t += protocol.FRAME_MS
            self.line_ms = t
            self._wake()
        self._end_speaking()

    def _next_heard(self) -> bytes:
        while self._inbound:
            frame = self._inbound.popleft()
            if frame is not _STREAM_BREAK:
                return frame
            self.recorder.cleared()
        return b""

    async def _send_caller_frame(self, t: float) -> bytes:
        ws = self._ws
        chunk = self._next_caller_chunk(t) if ws is not None else None
        if ws is None or chunk is None:
            return b"\xff" * protocol.FRAME_BYTES
        frame = chunk
        self._chunk += 1
        message = {
            "event": "media",
            "streamSid": self._stream_sid,
            "media": {"payload": base64.b64encode(frame).decode()},
        }
        try:
            await ws.send_str(json.dumps(message))
            self.stats.media_sent += 1
        except (ConnectionResetError, RuntimeError):
            pass  # the stream is going; serve() notices
        return frame
