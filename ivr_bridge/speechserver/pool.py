"""Synthesis in worker processes: prompts from different sessions speak on different cores.

espeak-ng keeps global state and the neural voice is told to use one thread, so in one process
each engine synthesises one prompt at a time: 50 prompts starting at once queue behind each
other. A pool of N processes (each with its own espeak and, when asked, its own neural model)
serves N at once. Processes start with ``spawn`` (never ``fork`` from a process that already
runs threads and an event loop) and are warmed before the server answers, so no caller pays for
loading a model.

What a pool cannot do is stop a synthesis already running in another process: a cancelled
request that has started runs on (espeak renders ~1,000x real time, the neural voice ~100x, so a
sentence costs a few to ~100 ms of one worker) and its result is dropped; one still queued is
withdrawn. A worker that dies breaks the executor: the pool builds a new one and retries the
request once, so a crash costs a moment, not the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import structlog

from ivr_bridge.speechserver.synth import MAX_TEXT_CHARS, Synthesis, SynthesisError

log = structlog.get_logger(__name__)

QUEUED_PER_PROCESS = 8
"""Requests in flight or waiting per worker before callers wait their turn here (bounded)."""


def default_processes() -> int:
    """One worker per core this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _ping() -> int:
    """In a worker, once it is warm: its pid (held a moment, so N pings reach N workers)."""
    time.sleep(0.05)
    return os.getpid()


def _warm(neural: bool) -> None:
    """A worker's initializer: load espeak (and the neural voice) before any request, and
    arrange to be terminated if the server dies without shutting the pool down (a crash)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG (Linux; else a no-op)
    from ivr_bridge.speechserver.engines import get_neural_synthesizer
    from ivr_bridge.speechserver.synth import get_synthesizer

    get_synthesizer().prepare()
    if neural:
        get_neural_synthesizer().prepare()


def _synthesize(
    text: str, voice: str, sample_rate: int, speed: float, language: str | None
) -> tuple[Synthesis, int]:
    """In a worker: the same routing as the in-process engines, on this worker's thread."""
    from ivr_bridge.speechserver.engines import get_neural_synthesizer, speaks_neural
    from ivr_bridge.speechserver.synth import get_synthesizer

    if speaks_neural(voice, language):
        result = get_neural_synthesizer().synthesize_blocking(text, sample_rate, speed)
    else:
        result = get_synthesizer().synthesize_blocking(text, voice, sample_rate, speed, language)
    return result, os.getpid()


class SynthesisPool:
    """The ``Synthesizer`` interface over N worker processes."""

    def __init__(self, processes: int, *, warm_neural: bool = False) -> None:
        if processes < 1:
            raise ValueError("a synthesis pool needs at least one process")
        self.processes = processes
        self._warm_neural = warm_neural
        self._executor = self._new_executor()
        self._generation = 0
        self._lock = threading.Lock()
        self._slots: asyncio.Semaphore | None = None
        self.served_by: dict[int, int] = {}
        """Requests served per worker pid (monitoring and tests)."""
        self.restarts = 0

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_warm,
            initargs=(self._warm_neural,),
        )

    async def start(self, within_s: float = 60.0) -> list[int]:
        """Start every worker and wait until each has loaded its engines; returns their pids."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        seen: set[int] = set()
        while len(seen) < self.processes:
            if loop.time() > deadline:
                raise SynthesisError(
                    f"{len(seen)} of {self.processes} synthesis workers started in {within_s:.0f} s"
                )
            # Submitted together, so the executor (which starts workers on demand) starts N;
            # a worker answers only once its initializer has loaded the engines.
            jobs = [loop.run_in_executor(self._executor, _ping) for _ in range(self.processes)]
            seen.update(await asyncio.gather(*jobs))
        log.info("synthesis_pool_started", processes=self.processes, pids=sorted(seen))
        return sorted(seen)

    def worker_pids(self) -> list[int]:
        processes = getattr(self._executor, "_processes", None) or {}
        return sorted(processes)

    async def synthesize(
        self,
        text: str,
        voice: str,
        sample_rate: int,
        speed: float = 1.0,
        language: str | None = None,
    ) -> Synthesis:
        if len(text) > MAX_TEXT_CHARS:
            raise SynthesisError(f"text longer than {MAX_TEXT_CHARS} characters")
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.processes * QUEUED_PER_PROCESS)
        async with self._slots:
            for attempt in (1, 2):
                generation, executor = self._generation, self._executor
                loop = asyncio.get_running_loop()
                try:
                    result, pid = await loop.run_in_executor(
                        executor, _synthesize, text, voice, sample_rate, speed, language
                    )
                except BrokenProcessPool:
                    self._replace(generation)
                    if attempt == 2:
                        raise SynthesisError("synthesis worker died twice in a row") from None
                    continue
                self.served_by[pid] = self.served_by.get(pid, 0) + 1
                return result
        raise AssertionError("unreachable")

    def _replace(self, generation: int) -> None:
        """A worker died: one caller builds the new executor, the others use it."""
        with self._lock:
            if generation != self._generation:
                return
            broken = self._executor
            self._executor = self._new_executor()
            self._generation += 1
            self.restarts += 1
        log.error("synthesis worker died; pool replaced", processes=self.processes)
        broken.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        """Stop the workers (they exit once their current job is done)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
