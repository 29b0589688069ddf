"""The load generator: K worker processes, each one asyncio loop placing its share of calls.

Calls run at real speed (``speed=1``): the load must be real. Each worker measures its own CPU
and its own event-loop lag, so the report can show the generator was not the bottleneck (a late
caller clock would look like a slow bridge). Results cross back as small ``CallSummary`` objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import random
import time
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from typing import Any

import structlog

from ivr_bridge.loadtest.caller import INTERRUPTION, CallSummary, build_script, summarize
from ivr_bridge.sim.scenario.script import DEFAULT_CALLER_VOICE

PROGRESS_STARTED = "started"
PROGRESS_FINISHED = "finished"


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    worker: int
    call_indexes: tuple[int, ...]
    start_offsets_s: tuple[float, ...]
    """When each call starts, relative to the common ``t0`` (wall clock, ``time.time``)."""
    t0: float
    voice_url: str
    auth_token: str | None
    duration_s: float
    barge_in_rate: float
    seed: int


@dataclass(slots=True)
class WorkerResult:
    worker: int
    calls: list[CallSummary]
    cpu_s: float
    """CPU this worker used while its calls ran (user + system)."""
    wall_s: float
    loop_lag_ms: list[float] = field(default_factory=list)
    """Samples of the worker's own event-loop lag (10 ms probe)."""
    error: str | None = None


async def _place_call(spec: WorkerSpec, index: int, offset_s: float, progress: Any) -> CallSummary:
    from ivr_bridge.sim import run_call

    delay = spec.t0 + offset_s - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    rng = random.Random(spec.seed * 1_000_003 + index)
    script = build_script(spec.duration_s, spec.barge_in_rate, rng, name=f"load-{index}")
    progress.put((PROGRESS_STARTED, index, None))
    try:
        result = await run_call(
            voice_url=spec.voice_url,
            ws_url=None,
            script=script,
            auth_token=spec.auth_token,
            speed=1.0,
            open_timeout_s=30.0,
        )
        summary = summarize(index, result)
    except Exception as exc:  # a crashed call is a failed call, never a crashed run
        summary = CallSummary(index=index, failed=f"{type(exc).__name__}: {exc}")
    progress.put((PROGRESS_FINISHED, index, summary.failed))
    return summary


async def _run_worker(spec: WorkerSpec, progress: Any) -> WorkerResult:
    from ivr_bridge.server.loop_lag import probe_loop_lag
    from ivr_bridge.sim.scenario.voice import synthesize_caller_speech

    await synthesize_caller_speech(INTERRUPTION, DEFAULT_CALLER_VOICE)  # warm the phrase cache
    lags: list[float] = []
    probe = asyncio.create_task(probe_loop_lag(lambda s: lags.append(s * 1000)))
    cpu0, wall0 = time.process_time(), time.monotonic()
    try:
        calls = await asyncio.gather(
            *(
                _place_call(spec, index, offset, progress)
                for index, offset in zip(spec.call_indexes, spec.start_offsets_s, strict=True)
            )
        )
    finally:
        probe.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await probe
    return WorkerResult(
        worker=spec.worker,
        calls=list(calls),
        cpu_s=time.process_time() - cpu0,
        wall_s=time.monotonic() - wall0,
        loop_lag_ms=lags,
    )


def worker_main(spec: WorkerSpec, progress: Queue[Any], results: Queue[Any]) -> None:
    """Process entry point: run the calls, put one ``WorkerResult`` on ``results``."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    try:
        result = asyncio.run(_run_worker(spec, progress))
    except BaseException as exc:
        result = WorkerResult(spec.worker, [], 0.0, 0.0, error=f"{type(exc).__name__}: {exc}")
    results.put(result)


def plan_workers(
    calls: int, workers: int, ramp_s: float, t0: float, **common: Any
) -> list[WorkerSpec]:
    """Spread calls round-robin over workers; call i starts at ``ramp_s * i / calls``."""
    specs = []
    for w in range(workers):
        indexes = tuple(range(w, calls, workers))
        offsets = tuple(ramp_s * i / calls for i in indexes)
        specs.append(WorkerSpec(w, indexes, offsets, t0, **common))
    return specs


def spawn_context() -> Any:
    """Fresh interpreters (no forked event loop or sockets from the parent)."""
    return mp.get_context("spawn")
