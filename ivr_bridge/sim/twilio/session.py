"""One media stream as Twilio runs it: a 20 ms line clock that sends and plays, and a receiver.

Every 20 ms of call time the line ticks: marks whose audio just finished are echoed, one inbound
``media`` frame goes out (caller audio, or µ-law silence like a real phone line), a queued DTMF
digit follows, and the next 20 ms of bot audio starts playing. The receiver queues bot audio and
marks and honours ``clear``. All sends share one lock so sequence numbers match wire order.

Every event is stamped on one clock, the line's (``line_ms``: the call time up to which the line
has sent and played), including what the server sends: a message is stamped with the line time
at which the caller's side received it. When the line falls behind its schedule (this process
stalled) it does not rush to catch up, which would compress call time the server had no chance
to use: call time slips instead, and the lateness is kept (``StreamStats.max_tick_lag_ms``) so a
run whose caller fell behind can say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from ivr_bridge.audio.codec import ULAW_BYTES_PER_MS
from ivr_bridge.sim.twilio import protocol
from ivr_bridge.sim.twilio.caller_side import CallEnded, CallerSide
from ivr_bridge.sim.twilio.clock import VirtualClock
from ivr_bridge.sim.twilio.jitter import PlayoutBuffer, UnderrunCounter
from ivr_bridge.sim.twilio.line import LineConditions
from ivr_bridge.sim.twilio.tap import LineTap

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class StreamStats:
    media_sent: int = 0
    messages_sent: int = 0
    media_received: int = 0
    bot_bytes_received: int = 0
    bot_bytes_heard: int = 0
    bot_bytes_cleared: int = 0
    marks_received: int = 0
    marks_echoed: int = 0
    clears: int = 0
    protocol_errors: int = 0
    warned_codes: set[int] = field(default_factory=set)
    underruns: int = 0
    """Gaps heard inside bot speech (the playout buffer ran dry, then audio resumed)."""
    underrun_ms: float = 0.0
    max_tick_lag_ms: float = 0.0
    """Worst lateness of the caller's own 20 ms line clock (a busy load generator shows here)."""
    late_ticks: int = 0
    """Line ticks that fired more than one frame (20 ms) late."""


class HeardAudio(Protocol):
    @property
    def playing(self) -> bool: ...
    @property
    def buffered_bytes(self) -> int: ...


class CallerLine(Protocol):
    """What a caller script runs on: this module's simulated Twilio stream, or a real call's
    stream served to the tester (:mod:`ivr_bridge.sim.twilio.served`)."""

    clock: VirtualClock
    line_ms: float
    bot_frames_heard: int
    last_bot_frame_end_ms: float | None

    @property
    def buffer(self) -> HeardAudio: ...
    async def speak(self, ulaw: bytes) -> tuple[float, float]: ...
    async def press(self, digit: str) -> float: ...
    async def wait_for(
        self, predicate: Callable[[], bool], timeout_ms: float | None = None
    ) -> bool: ...
    async def hangup(self, reason: str = "caller") -> None: ...


class StreamSession(CallerSide):
    def __init__(
        self,
        ws: ClientConnection,
        ids: protocol.StreamIds,
        clock: VirtualClock,
        recorder: LineTap,
        custom_parameters: dict[str, str],
        *,
        first_media_ms: int = 120,
        max_duration_ms: float = 180_000,
        line: LineConditions | None = None,
    ) -> None:
        self.ws = ws
        self.ids = ids
        self.clock = clock
        self.recorder = recorder
        self.custom_parameters = custom_parameters
        self.first_media_ms = first_media_ms
        self.max_duration_ms = max_duration_ms
        self.line = line
        """The persona's noise and impairments on what the caller sends (None: a clean line)."""
        self._held: deque[tuple[float, dict[str, Any]]] = deque()
        """Jittered frames not yet sent: (release call ms, message)."""
        self.buffer = PlayoutBuffer()
        self.underruns = UnderrunCounter(max_gap_ms=recorder.utterance_gap_ms)
        self.stats = StreamStats()
        self.line_ms = 0.0
        """Call time up to which the line has sent and played."""
        self.bot_frames_heard = 0
        self.last_bot_frame_end_ms: float | None = None
        self.closed_by: str | None = None
        """``server`` | ``caller`` (hung up) | ``max_duration`` | ``error``."""
        self.close_code: int | None = None
        self._stamper = protocol.SequenceStamper(ids.stream_sid)
        self._send_lock = asyncio.Lock()
        self._stop_sent = False
        self._ending = False
        super().__init__()
        self._digits: deque[tuple[str, asyncio.Future[float]]] = deque()
        self._immediate: list[tuple[str, bool]] = []
        """Mark echoes decided on receipt (nothing buffered, or a clear), sent by the receiver."""

    @property
    def ended(self) -> bool:
        return self._ending

    # --- what the caller does ------------------------------------------------------------------

    async def press(self, digit: str) -> float:
        """Send one DTMF digit with the next frame; returns its call time."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._digits.append((digit, future))
        return await future

    async def hangup(self, reason: str = "caller") -> None:
        """Send ``stop`` and close the socket, as Twilio does when the caller hangs up."""
        if self._ending:
            return
        self._ending = True
        self.closed_by = reason
        sent = await self._send(protocol.stop(self.ids), final=True)
        if sent:
            self.recorder.event(self.line_ms, "stop_sent", reason=reason)
        with contextlib.suppress(Exception):
            await self.ws.close()
        self._wake()

    # --- the stream ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the stream until the server closes it or the caller hangs up."""
        self.clock.start()
        try:
            await self.ws.send(json.dumps(protocol.connected()))
        except ConnectionClosed:
            self._ending, self.closed_by = True, "server"
            self.close_code = self.ws.close_code
            self.recorder.event(0, "stream_closed", by=self.closed_by, code=self.close_code)
            return
        await self._send(protocol.start(self.ids, self.custom_parameters))
        self.recorder.event(0, "stream_started", parameters=self.custom_parameters)
        ticker = asyncio.create_task(self._line(), name="sim-line")
        receiver = asyncio.create_task(self._receive(), name="sim-receive")
        try:
            done, _ = await asyncio.wait({ticker, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if not self._ending:
                # The socket closed under us, or the line failed: either way the call is over.
                self._ending = True
                self.closed_by = "server" if receiver in done else "error"
                if receiver not in done:
                    with contextlib.suppress(Exception):
                        await self.ws.close()
            self._wake()
            if not receiver.done():
                # After our close the receiver ends when the server acknowledges it.
                await asyncio.wait({receiver}, timeout=5)
            ticker.cancel()
            receiver.cancel()
            for result in await asyncio.gather(ticker, receiver, return_exceptions=True):
                if isinstance(result, Exception):
                    raise result
        finally:
            ticker.cancel()
            receiver.cancel()
            self._cancel_pending()
        self.close_code = self.ws.close_code
        self.recorder.event(self.line_ms, "stream_closed", by=self.closed_by, code=self.close_code)

    async def _line(self) -> None:
        t = float(self.first_media_ms)
        while not self._ending:
            await self.clock.sleep_until(t)
            if self._ending:
                return
            lag = self.clock.now_ms() - t
            if lag > self.stats.max_tick_lag_ms:
                self.stats.max_tick_lag_ms = lag
            if lag > protocol.FRAME_MS:
                self.stats.late_ticks += 1
                # Never rush to catch up: a burst of frames would be call time in which the
                # server (stalled with us) had no chance to answer, and would read as silence.
                self.clock.slip(lag)
            if t >= self.max_duration_ms:
                await self.hangup("max_duration")
                return
            played = self.buffer.advance()
            gap_ms = self.underruns.played(played.bot_bytes)
            if gap_ms:
                self.stats.underruns += 1
                self.stats.underrun_ms += gap_ms
                self.recorder.event(t, "underrun", gap_ms=gap_ms)
            for name in played.echoes:
                await self._echo(name, t, cleared=False)
            caller = self._next_caller_frame(t)
            self.stats.media_sent += 1
            if not await self._send_caller_frame(t, caller):
                return
            if self._digits:
                digit, future = self._digits.popleft()
                if await self._send(protocol.dtmf(digit)):
                    self.recorder.event(t, "digit", digit=digit)
                    if not future.done():
                        future.set_result(t)
            self.recorder.frame(t, caller, played.audio, played.bot_bytes)
            if played.bot_bytes:
                self.bot_frames_heard += 1
                self.stats.bot_bytes_heard += played.bot_bytes
                self.last_bot_frame_end_ms = t + protocol.FRAME_MS
            t += protocol.FRAME_MS
            self.line_ms = t
            self._wake()
            await asyncio.sleep(0)  # let the receiver run even when the line is catching up

    async def _send_caller_frame(self, t: float, caller: bytes) -> bool:
        """The caller's frame as the persona's line delivers it (noise, loss, clipping, jitter)."""
        if self.line is None:
            return await self._send(protocol.media(self.stats.media_sent, int(t), caller))
        message = protocol.media(self.stats.media_sent, int(t), self.line.frame(caller))
        release = t + self.line.delay_ms()
        if self._held:
            release = max(release, self._held[-1][0])  # a network delays, it does not reorder
        self._held.append((release, message))
        while self._held and self._held[0][0] <= t:
            if not await self._send(self._held.popleft()[1]):
                return False
        return True

    def _next_caller_frame(self, t: float) -> bytes:
        chunk = self._next_caller_chunk(t)
        return b"\xff" * protocol.FRAME_BYTES if chunk is None else chunk

    async def _receive(self) -> None:
        try:
            async for frame in self.ws:
                self._on_frame(frame)
                await self._flush_immediate_echoes()
                self._wake()
        except ConnectionClosed:
            pass

    def _on_frame(self, frame: str | bytes) -> None:
        now = self.line_ms
        try:
            message = protocol.parse_server_message(frame, self.ids.stream_sid)
        except protocol.ProtocolViolation as violation:
            self.stats.protocol_errors += 1
            first = violation.code not in self.stats.warned_codes
            self.stats.warned_codes.add(violation.code)
            self.recorder.event(
                now,
                "protocol_error",
                code=violation.code,
                reason=violation.reason,
                twilio_warns=first,
            )
            log.warning("sim_protocol_error", code=violation.code, reason=violation.reason)
            return
        if isinstance(message, protocol.ServerMedia):
            self.stats.media_received += 1
            self.stats.bot_bytes_received += len(message.ulaw)
            if protocol.looks_like_wav_header(message.ulaw):
                self.recorder.event(now, "warning", reason="media payload starts with a WAV header")
            self.buffer.push_audio(message.ulaw)
        elif isinstance(message, protocol.ServerMark):
            self.stats.marks_received += 1
            self.recorder.event(now, "mark_received", name=message.name)
            self._immediate.extend((name, False) for name in self.buffer.push_mark(message.name))
        else:
            cleared = self.buffer.clear()
            self.underruns.cleared()
            self.stats.clears += 1
            self.stats.bot_bytes_cleared += cleared.dropped_bytes
            self.recorder.cleared()
            self.recorder.event(
                now,
                "clear",
                dropped_ms=cleared.dropped_bytes / ULAW_BYTES_PER_MS,
                echoed=cleared.echoes,
            )
            self._immediate.extend((name, True) for name in cleared.echoes)

    async def _flush_immediate_echoes(self) -> None:
        pending, self._immediate = self._immediate, []
        for name, cleared in pending:
            await self._echo(name, self.line_ms, cleared=cleared)

    async def _echo(self, name: str, t: float, *, cleared: bool) -> None:
        if await self._send(protocol.mark(name)):
            self.stats.marks_echoed += 1
            self.recorder.event(t, "mark_echoed", name=name, cleared=cleared)

    async def _send(self, message: dict[str, Any], *, final: bool = False) -> bool:
        """Stamp and send one message; False once the stream is over."""
        async with self._send_lock:
            if self._stop_sent or (self._ending and not final):
                return False
            if final:
                self._stop_sent = True
            try:
                await self.ws.send(json.dumps(self._stamper.stamp(message)))
            except ConnectionClosed:
                self._ending = True
                self.closed_by = self.closed_by or "server"
                return False
            self.stats.messages_sent += 1
            return True

    def _cancel_pending(self) -> None:
        for _, future in self._digits:
            if not future.done():
                future.set_exception(CallEnded())
        self._digits.clear()
        self._end_speaking()
