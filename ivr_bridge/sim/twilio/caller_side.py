"""The caller's side of any line, simulated or real: its audio queued as segments and sent one
20 ms frame per tick, and waiting for things in call time.

Both transports (:mod:`~ivr_bridge.sim.twilio.session`, where we play Twilio, and
:mod:`~ivr_bridge.sim.twilio.served`, a real call's stream) tick a line; what the caller says
and how a script waits on it is the same on both, so it lives here once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ivr_bridge.audio.codec import ULAW_BYTES_PER_MS
from ivr_bridge.errors import SimulationError
from ivr_bridge.sim.twilio.protocol import FRAME_BYTES


class CallEnded(SimulationError):
    """The stream ended while the caller was waiting for something."""


@dataclass(slots=True)
class _Segment:
    """Caller audio being sent; the line fills in when it started and ended."""

    ulaw: bytes
    done: asyncio.Future[None]
    offset: int = 0
    start_ms: float | None = None
    end_ms: float | None = None


class CallerSide:
    """Speaking and waiting; the line calls ``_next_caller_chunk`` each tick and ``_wake``."""

    line_ms: float
    _ending: bool

    def __init__(self) -> None:
        # Unbounded on purpose: the runner awaits each step, so these hold at most a few items,
        # and a bounded deque would silently drop a step whose future then never resolves.
        self._segments: deque[_Segment] = deque()
        self._waiters: list[asyncio.Future[None]] = []

    async def speak(self, ulaw: bytes) -> tuple[float, float]:
        """Send caller audio at line rate; returns its (start, end) call time."""
        segment = _Segment(ulaw=ulaw, done=asyncio.get_running_loop().create_future())
        self._segments.append(segment)
        try:
            await segment.done
        except asyncio.CancelledError:
            with contextlib.suppress(ValueError):
                self._segments.remove(segment)
            raise
        assert segment.start_ms is not None and segment.end_ms is not None
        return segment.start_ms, segment.end_ms

    async def wait_for(
        self, predicate: Callable[[], bool], timeout_ms: float | None = None
    ) -> bool:
        """Wait (in call time) until ``predicate`` holds; False on timeout, CallEnded if the
        stream ends first. Checked whenever the line wakes its waiters."""
        deadline = None if timeout_ms is None else self.line_ms + timeout_ms
        while True:
            if self._ending:
                raise CallEnded
            if predicate():
                return True
            if deadline is not None and self.line_ms >= deadline:
                return False
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(future)
            try:
                await future
            finally:
                self._waiters.remove(future)

    def _next_caller_chunk(self, t: float) -> bytes | None:
        """The next frame of caller audio at call time ``t`` (None: the caller is quiet)."""
        if not self._segments:
            return None
        segment = self._segments[0]
        if segment.start_ms is None:
            segment.start_ms = t
        chunk = segment.ulaw[segment.offset : segment.offset + FRAME_BYTES]
        segment.offset += len(chunk)
        if segment.offset >= len(segment.ulaw):
            self._segments.popleft()
            segment.end_ms = t + len(chunk) / ULAW_BYTES_PER_MS
            if not segment.done.done():
                segment.done.set_result(None)
        return chunk.ljust(FRAME_BYTES, b"\xff")

    def _wake(self) -> None:
        for future in list(self._waiters):
            if not future.done():
                future.set_result(None)

    def _end_speaking(self) -> None:
        """The call is over: every waiting ``speak`` learns it."""
        for segment in self._segments:
            if not segment.done.done():
                segment.done.set_exception(CallEnded())
        self._segments.clear()
        self._wake()
