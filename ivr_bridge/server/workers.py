"""``ivr-bridge serve --workers N``: every core of the machine on one port.

One Python process runs one event loop on one core. N worker processes each run a whole bridge
bound to the same port with SO_REUSEPORT, and the kernel spreads incoming connections over them.
A call's webhook, its stream and its after-stream request are separate connections and so may
reach different workers: they share outcomes and live calls through Redis exactly as replicas on
different machines do, which is why several workers need ``IVR_REDIS_URL``.

The parent serves no calls. It runs the one embedded speech server the workers share (when no
LMNT endpoint is configured), gives the workers one directory for their metrics (so any worker's
``/metrics`` reports all of them), restarts a worker that dies, and on SIGTERM passes the signal
on and waits while every worker drains its calls (``IVR_SHUTDOWN_GRACE_S``). Only worker 0 runs
the campaign dispatcher: the database would keep N of them correct, but N would only contend.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass

import structlog
from prometheus_client import multiprocess

from ivr_bridge.config import Settings
from ivr_bridge.errors import ConfigError
from ivr_bridge.metrics import MULTIPROC_ENV
from ivr_bridge.server.app import AFTER_STREAM_WAIT_S, PLACEHOLDER_KEY, start_embedded_speech

log = structlog.get_logger(__name__)

WORKER_INDEX_ENV = "IVR_WORKER_INDEX"
"""Set by the parent in each worker's environment (0 … N-1): the worker binds with
SO_REUSEPORT, and only worker 0 dials."""
RESTART_BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 60.0
"""A worker that ran this long before dying is restarted at once (its backoff resets)."""
KILL_MARGIN_S = 15.0
"""Beyond a worker's own drain bound, how long the parent waits before SIGKILL."""


def worker_count(settings: Settings) -> int:
    """``IVR_WORKERS``, else one per core the process may use when Redis is there to share
    calls between them, else one (with a note saying how to use more)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if settings.workers is not None:
        count = settings.workers
    elif settings.redis_url is not None:
        count = max(1, cores or 1)
    else:
        if (cores or 1) > 1:
            log.info(
                "one worker process: set IVR_REDIS_URL to use every core (workers share their "
                "calls' outcomes and events through it), and IVR_WORKERS to choose how many",
                cores=cores,
            )
        return 1
    if count > 1 and settings.redis_url is None:
        raise ConfigError(
            f"IVR_WORKERS={count} needs IVR_REDIS_URL: a call's stream and its after-stream "
            "request may reach different worker processes, which share outcomes and live calls "
            "through Redis (or set IVR_WORKERS=1)"
        )
    if count > 1 and settings.port == 0:
        raise ConfigError(
            f"IVR_WORKERS={count} with IVR_PORT=0: workers must share one known port; "
            "set IVR_PORT (or --port) to a fixed port"
        )
    return count


@dataclass
class _Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    backoff_s: float = 1.0


class Supervisor:
    def __init__(self, settings: Settings, count: int) -> None:
        self.settings = settings
        self.workers = [_Worker(i) for i in range(count)]
        self.metrics_dir = tempfile.mkdtemp(prefix="ivr-bridge-metrics-")
        self._stopping = False
        self._env: dict[str, str] = {}
        self._watchers: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)

    async def _run(self) -> None:
        settings = self.settings
        speech_server = None
        env = {**os.environ, MULTIPROC_ENV: self.metrics_dir, "IVR_WORKERS": "1"}
        env["IVR_HOST"], env["IVR_PORT"] = settings.host, str(settings.port)
        if settings.uses_embedded_speech:
            from ivr_bridge.speechserver.pool import default_processes

            speech_server = await start_embedded_speech(settings.voice, default_processes())
            env["LMNT_BASE_URL"] = speech_server.base_url
            env["LMNT_API_KEY"] = PLACEHOLDER_KEY
            log.warning(
                "LMNT_API_KEY is not set: every worker speaks through one embedded "
                "LMNT-compatible speech server",
                speech_url=speech_server.base_url,
            )
        self._env = env
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            for worker in self.workers:
                await self._spawn(worker)
            log.info(
                "workers serving",
                port=settings.port,
                pids=[w.process.pid for w in self.workers if w.process],
            )
            await stop.wait()
            log.info("shutdown requested: draining every worker", workers=len(self.workers))
        finally:
            self._stopping = True
            await self._stop_all()
            for task in self._watchers:
                task.cancel()
            await asyncio.gather(*self._watchers, return_exceptions=True)
            if speech_server is not None:
                await speech_server.stop()

    async def _spawn(self, worker: _Worker) -> None:
        env = {**self._env, WORKER_INDEX_ENV: str(worker.index)}
        worker.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ivr_bridge", "serve", env=env, preexec_fn=_die_with_parent
        )
        worker.started_at = time.monotonic()
        watcher = asyncio.create_task(self._watch(worker, worker.process), name="worker-watch")
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _watch(self, worker: _Worker, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        multiprocess.mark_process_dead(process.pid, self.metrics_dir)
        if self._stopping:
            return
        ran_s = time.monotonic() - worker.started_at
        worker.backoff_s = 1.0 if ran_s > STABLE_AFTER_S else worker.backoff_s
        log.error(
            "worker died; starting another",
            worker=worker.index,
            pid=process.pid,
            exit_code=code,
            ran_s=round(ran_s, 1),
            restart_in_s=worker.backoff_s,
        )
        await asyncio.sleep(worker.backoff_s)
        worker.backoff_s = min(worker.backoff_s * 2, RESTART_BACKOFF_MAX_S)
        if not self._stopping:
            await self._spawn(worker)

    async def _stop_all(self) -> None:
        running = [w.process for w in self.workers if w.process and w.process.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        limit = self.settings.shutdown_grace_s + AFTER_STREAM_WAIT_S + KILL_MARGIN_S
        waits = [asyncio.create_task(p.wait()) for p in running]
        if not waits:
            return
        _done, pending = await asyncio.wait(waits, timeout=limit)
        for process in running:
            if process.returncode is None:
                log.error("worker did not drain in time; killing it", pid=process.pid)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        if pending:
            await asyncio.wait(pending, timeout=5)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it if the parent dies (no orphan keeps the port)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run_workers(settings: Settings, count: int) -> None:
    asyncio.run(Supervisor(settings, count).run())


__all__ = ["WORKER_INDEX_ENV", "Supervisor", "run_workers", "worker_count"]
