"""Runs one load test: processes up, callers spread over workers, /proc and /metrics sampled."""

from __future__ import annotations

import contextlib
import queue
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr_bridge.loadtest.caller import CallSummary
from ivr_bridge.loadtest.config import LoadTestConfig
from ivr_bridge.loadtest.processes import (
    ManagedProcess,
    start_bridge,
    start_redis,
    start_speech_server,
)
from ivr_bridge.loadtest.procstat import ProcSample, read_tree
from ivr_bridge.loadtest.promtext import HistogramSnapshot, counter_total, parse_histogram
from ivr_bridge.loadtest.report import BridgeCounters, LoadReport, ProcessFigures, aggregate
from ivr_bridge.loadtest.workers import (
    PROGRESS_FINISHED,
    PROGRESS_STARTED,
    WorkerResult,
    plan_workers,
    spawn_context,
    worker_main,
)

LAG_METRIC = "ivr_event_loop_lag_seconds"
UNDERRUNS = "ivr_playback_underruns_total"
UNDERRUN_SECONDS = "ivr_playback_underrun_seconds_total"
STALE_FRAMES = "ivr_playback_stale_frames_total"
MB = 1024 * 1024


@dataclass(slots=True)
class Progress:
    """What the progress display shows, updated about once a second."""

    elapsed_s: float
    started: int
    finished: int
    failed: int
    total: int
    bridge_cpu_pct: float | None
    bridge_rss_mb: float | None


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True, slots=True)
class _Scrape:
    """What the report needs from one read of the bridge's ``/metrics``."""

    lag: HistogramSnapshot | None
    counters: tuple[float, float, float]
    """Underruns, underrun seconds, stale frames sent."""


def _scrape(base_url: str) -> _Scrape | None:
    try:
        with urllib.request.urlopen(base_url + "/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    counters = (
        counter_total(text, UNDERRUNS),
        counter_total(text, UNDERRUN_SECONDS),
        counter_total(text, STALE_FRAMES),
    )
    return _Scrape(parse_histogram(text, LAG_METRIC), counters)


def _run_counters(before: _Scrape | None, after: _Scrape | None) -> BridgeCounters:
    if before is None or after is None:
        return BridgeCounters()
    delta = [a - b for a, b in zip(after.counters, before.counters, strict=True)]
    return BridgeCounters(underruns=delta[0], underrun_s=delta[1], stale_frames=delta[2])


def _sample(pid: int | None) -> ProcSample | None:
    if pid is None:
        return None
    try:
        return read_tree(pid)  # the bridge with its workers, if it has any
    except (ProcessLookupError, OSError):
        return None


class _ProcWatch:
    """CPU delta and peak RSS of one process over the run."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.first = _sample(pid)
        self.last = self.first
        self.peak_rss = self.first.rss_bytes if self.first else 0

    def poll(self) -> ProcSample | None:
        sample = _sample(self.pid)
        if sample is not None:
            self.last = sample
            self.peak_rss = max(self.peak_rss, sample.rss_bytes)
        return sample

    def figures(self) -> ProcessFigures:
        if self.first is None or self.last is None:
            return ProcessFigures()
        return ProcessFigures(
            cpu_s=self.last.cpu_s - self.first.cpu_s,
            rss_mb_before=self.first.rss_bytes / MB,
            rss_mb_peak=self.peak_rss / MB,
        )


def run_loadtest(config: LoadTestConfig, on_progress: ProgressCallback | None = None) -> LoadReport:
    """Start what is under test (unless ``config.url``), run the calls, stop it, report."""
    with tempfile.TemporaryDirectory(prefix="ivr-loadtest-") as tmp:
        started: list[ManagedProcess] = []
        try:
            if config.url is None:
                speech = start_speech_server(
                    Path(tmp),
                    realtime_factor=config.speech_realtime_factor,
                    first_audio_delay_ms=config.speech_first_audio_delay_ms,
                )
                started.append(speech)
                redis_url = None
                if config.bridge_workers > 1:
                    redis = start_redis(Path(tmp))
                    started.append(redis)
                    redis_url = redis.base_url
                bridge = start_bridge(
                    Path(tmp),
                    speech_url=speech.base_url,
                    auth_token=config.auth_token,
                    flows_dir=config.flows_dir.resolve(),
                    flow=config.flow,
                    workers=config.bridge_workers,
                    redis_url=redis_url,
                    records=config.records,
                )
                started.append(bridge)
                return _drive(config, bridge.base_url, bridge.pid, speech.pid, on_progress)
            return _drive(config, config.url.rstrip("/"), config.bridge_pid, None, on_progress)
        finally:
            for proc in reversed(started):
                proc.stop()


def _drive(
    config: LoadTestConfig,
    base_url: str,
    bridge_pid: int | None,
    speech_pid: int | None,
    on_progress: ProgressCallback | None,
) -> LoadReport:
    ctx = spawn_context()
    progress_q: Any = ctx.Queue()
    results_q: Any = ctx.Queue()
    n_workers = config.worker_count()
    t0 = time.time() + 1.0 + 0.3 * n_workers  # time for the workers to import and warm up
    specs = plan_workers(
        config.calls,
        n_workers,
        config.ramp_s,
        t0,
        voice_url=f"{base_url}/twilio/voice?flow={config.flow}",
        auth_token=config.auth_token,
        duration_s=config.duration_s,
        barge_in_rate=config.barge_in_rate,
        seed=config.seed,
    )
    processes = [
        ctx.Process(target=worker_main, args=(spec, progress_q, results_q), daemon=True)
        for spec in specs
    ]
    for proc in processes:
        proc.start()
    scrape_before = _scrape(base_url)
    bridge_watch, speech_watch = _ProcWatch(bridge_pid), _ProcWatch(speech_pid)
    wall0 = time.monotonic()
    results: list[WorkerResult] = []
    counts = {PROGRESS_STARTED: 0, PROGRESS_FINISHED: 0, "failed": 0}
    deadline = wall0 + 1.0 + 0.3 * n_workers + config.ramp_s + config.duration_s + 60.0
    last_cpu = bridge_watch.first
    last_tick = wall0
    try:
        while len(results) < len(processes) and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                results.append(results_q.get(timeout=0.2))
            while True:
                try:
                    kind, _, failed = progress_q.get_nowait()
                except queue.Empty:
                    break
                counts[kind] += 1
                counts["failed"] += kind == PROGRESS_FINISHED and failed is not None
            if results_q.empty() and not any(p.is_alive() for p in processes):
                break  # every worker is gone; whatever did not report counts as failed
            now = time.monotonic()
            if now - last_tick >= 1.0:
                sample = bridge_watch.poll()
                speech_watch.poll()
                cpu_pct = None
                if sample is not None and last_cpu is not None:
                    cpu_pct = 100 * (sample.cpu_s - last_cpu.cpu_s) / (now - last_tick)
                last_cpu, last_tick = sample, now
                if on_progress is not None:
                    on_progress(
                        Progress(
                            elapsed_s=now - wall0,
                            started=counts[PROGRESS_STARTED],
                            finished=counts[PROGRESS_FINISHED],
                            failed=counts["failed"],
                            total=config.calls,
                            bridge_cpu_pct=cpu_pct,
                            bridge_rss_mb=None if sample is None else sample.rss_bytes / MB,
                        )
                    )
    finally:
        for proc in processes:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
    bridge_watch.poll()
    speech_watch.poll()
    wall_s = time.monotonic() - wall0
    scrape_after = _scrape(base_url)
    lag_before = None if scrape_before is None else scrape_before.lag
    lag_after = None if scrape_after is None else scrape_after.lag
    lag = lag_after.minus(lag_before) if lag_after is not None else None
    calls = _collect_calls(config.calls, results)
    p50 = lag.quantile(0.50) if lag is not None else None
    p99 = lag.quantile(0.99) if lag is not None else None
    return aggregate(
        calls,
        wall_s=wall_s,
        bridge=bridge_watch.figures(),
        speech_server=speech_watch.figures(),
        inbound_lag_ms=(None if p50 is None else p50 * 1000, None if p99 is None else p99 * 1000),
        generator_workers=n_workers,
        generator_cpu_s=sum(r.cpu_s for r in results),
        generator_loop_lag_ms=[x for r in results for x in r.loop_lag_ms],
        counters=_run_counters(scrape_before, scrape_after),
    )


def _collect_calls(expected: int, results: list[WorkerResult]) -> list[CallSummary]:
    """Every planned call gets a summary; a lost worker's calls count as failed."""
    by_index = {c.index: c for r in results for c in r.calls}
    errors = [r.error for r in results if r.error]
    reason = errors[0] if errors else "load-generator worker did not report"
    return [by_index.get(i) or CallSummary(index=i, failed=reason) for i in range(expected)]
