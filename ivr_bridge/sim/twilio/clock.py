"""The simulated call's virtual clock: call time in ms, running ``speed`` times faster than real.

Everything the caller waits for and every timestamp it records is in call time, so a test run at
``speed=20`` produces the same timeline (give or take scheduling) as a real-time demo.
"""

from __future__ import annotations

import asyncio


class VirtualClock:
    """Call time (ms since :meth:`start`) = real elapsed time x ``speed``."""

    def __init__(self, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError("speed must be > 0")
        self.speed = speed
        self._origin: float | None = None
        self.slipped_ms = 0.0
        """Call time given up to stalls of this process (see ``slip``)."""
        self.started_at: float | None = None
        """Event-loop time (``time.monotonic``) at which call time 0 was."""

    def start(self) -> None:
        """Call time 0 is now (the moment the media stream opens)."""
        self._origin = self.started_at = asyncio.get_running_loop().time()

    @property
    def started(self) -> bool:
        return self._origin is not None

    def now_ms(self) -> float:
        """Current call time; 0 before the clock started."""
        if self._origin is None:
            return 0.0
        return (asyncio.get_running_loop().time() - self._origin) * 1000.0 * self.speed

    def slip(self, call_ms: float) -> None:
        """Move call time back by ``call_ms``: the caller fell behind (its machine stalled), and
        rather than rush to catch up, call time resumes where the caller is."""
        if self._origin is not None and call_ms > 0:
            self._origin += self.real_seconds(call_ms)
            self.slipped_ms += call_ms

    def real_seconds(self, call_ms: float) -> float:
        """How long ``call_ms`` of call time lasts in real time."""
        return call_ms / 1000.0 / self.speed

    async def sleep_until(self, call_ms: float) -> None:
        """Sleep until call time reaches ``call_ms`` (returns at once if it already has)."""
        delay = self.real_seconds(call_ms - self.now_ms())
        if delay > 0:
            await asyncio.sleep(delay)

    async def sleep(self, call_ms: float) -> None:
        await asyncio.sleep(max(self.real_seconds(call_ms), 0.0))
