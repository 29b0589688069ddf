"""The call clock: time measured on the caller's audio, not the server's wall clock.

Twilio stamps every inbound media frame (``media.timestamp``, ms since the stream started).
Timeouts (no input, inter-digit, end of utterance) are measured on that clock, so a simulated
caller running ten times faster than real time gets the same behaviour, deterministically. If
frames stop arriving (a line that sends nothing during silence), the clock keeps moving with
wall time from the last frame, so a timeout can never hang forever.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable

MAX_JUMP_MS = 2000
"""Twilio sends a frame every 20 ms; a gap of more than this between two frames is not audio."""


class CallClock:
    def __init__(self, *, stall_after_ms: int = 500, wall: Callable[[], float] = time.monotonic):
        self._wall = wall
        self._stall_after_s = stall_after_ms / 1000
        self._media_ms = 0
        self._media_wall = wall()
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._ids = itertools.count()
        self.jumps_refused = 0

    def on_media(self, timestamp_ms: int, frame_ms: int = 20) -> int:
        """A frame arrived; wake every waiter whose time has come. Returns the frame's time on
        this clock: its own, unless it jumps implausibly far ahead (a frame claiming to be
        minutes later would fire every pending timeout at once), when the clock moves by the
        frame's length only. It never goes back (out-of-order frames keep the clock where it
        is)."""
        if timestamp_ms > self._media_ms + MAX_JUMP_MS:
            self.jumps_refused += 1
            timestamp_ms = self._media_ms + frame_ms
        if timestamp_ms < self._media_ms:
            return self._media_ms
        self._media_ms = timestamp_ms
        self._media_wall = self._wall()
        self._wake(self.now_ms())
        return timestamp_ms

    def advance_to(self, call_ms: float) -> None:
        """Move call time to ``call_ms`` (never back), as a scripted fake's line would: jumps
        are the point there, so none is refused."""
        if call_ms > self._media_ms:
            self._media_ms = int(call_ms)
            self._media_wall = self._wall()
            self._wake(self.now_ms())

    def now_ms(self) -> float:
        """Latest frame's timestamp, plus wall time once frames have stalled."""
        since = self._wall() - self._media_wall
        if since <= self._stall_after_s:
            return float(self._media_ms)
        return self._media_ms + (since - self._stall_after_s) * 1000

    async def sleep_until(self, at_ms: float) -> None:
        if self.now_ms() >= at_ms:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (at_ms, next(self._ids), future)
        heapq.heappush(self._waiters, entry)
        try:
            while not future.done():
                # Wall-clock fallback: re-check at most every stall period when frames stop.
                wall_left = (at_ms - self.now_ms()) / 1000 + self._stall_after_s
                done, _ = await asyncio.wait({future}, timeout=max(0.01, wall_left))
                if not done and self.now_ms() >= at_ms:
                    break
        finally:
            if not future.done():
                future.cancel()

    async def sleep(self, ms: float) -> None:
        await self.sleep_until(self.now_ms() + ms)

    def _wake(self, now: float) -> None:
        while self._waiters and self._waiters[0][0] <= now:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
        # Drop cancelled waiters lazily so the heap cannot grow without bound.
        if len(self._waiters) > 64:
            self._waiters = [w for w in self._waiters if not w[2].done()]
            heapq.heapify(self._waiters)
