"""The load run's result: per-call summaries and process samples folded into one report."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ivr_bridge.loadtest.caller import CallSummary

FRAME_S = 0.02
"""One Twilio media frame: 20 ms of 8 kHz µ-law."""


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass(slots=True)
class ProcessFigures:
    cpu_s: float | None = None
    rss_mb_before: float | None = None
    rss_mb_peak: float | None = None


@dataclass(slots=True)
class BridgeCounters:
    """Counted by the bridge over the run (``/metrics`` differenced); None when not scraped."""

    underruns: float | None = None
    underrun_s: float | None = None
    stale_frames: float | None = None


@dataclass(slots=True)
class LoadReport:
    calls: int
    failed_calls: int
    underruns: int | None
    """Twilio ran dry inside an utterance (the bridge's ``ivr_playback_underruns_total``)."""
    underrun_ms: float | None
    caller_heard_gaps: int
    """Gaps the callers heard between bits of bot audio, pauses between prompts included."""
    caller_heard_gap_ms: float
    stale_frames: int
    """Frames of a cut prompt the callers received after its ``clear`` (from the marks)."""
    bridge_stale_frames: int | None
    """The same, as the bridge counted what it sent (should agree, and be 0)."""
    inbound_lag_ms_p50: float | None
    inbound_lag_ms_p99: float | None
    bridge_cpu_ms_per_call_second: float | None
    bridge_rss_mb_per_call: float | None
    barge_in_clear_ms_p50: float | None
    barge_in_clear_ms_p95: float | None
    dtmf_first_audio_ms_p50: float | None
    dtmf_first_audio_ms_p95: float | None
    first_audio_ms_p50: float | None
    """Stream start → the first bot audio each caller heard."""
    first_audio_ms_p95: float | None
    barge_ins: int
    barge_ins_without_clear: int
    call_seconds: float
    bot_audio_s: float
    """Bot audio the callers received (20 ms a media frame): the work the run really asked for.
    A change that lets more prompts play to their end raises it, and the CPU with it."""
    wall_s: float
    bridge: ProcessFigures
    speech_server: ProcessFigures
    generator_workers: int
    generator_cpu_s: float
    generator_loop_lag_ms_p99: float | None
    generator_max_tick_lag_ms: float
    generator_late_ticks: int
    failures: list[str] = field(default_factory=list)
    """The first few failure reasons, for the operator."""

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    @property
    def passed(self) -> bool:
        """Zero failed calls, underruns and stale frames; inbound lag p99 under 20 ms.
        Unknown underruns (``/metrics`` not scraped) do not pass."""
        lag = self.inbound_lag_ms_p99
        return (
            self.failed_calls == 0
            and self.underruns == 0
            and self.stale_frames == 0
            and not self.bridge_stale_frames
            and lag is not None
            and lag < 20.0
        )

    def table(self) -> str:
        def f(value: float | None, unit: str = "", digits: int = 1) -> str:
            return "-" if value is None else f"{value:.{digits}f}{unit}"

        b, s = self.bridge, self.speech_server
        cpu_pct = None if b.cpu_s is None or not self.wall_s else 100 * b.cpu_s / self.wall_s
        speech_pct = None if s.cpu_s is None or not self.wall_s else 100 * s.cpu_s / self.wall_s
        gen_pct = 100 * self.generator_cpu_s / self.wall_s if self.wall_s else None
        rows = [
            ("calls (failed)", f"{self.calls} ({self.failed_calls})"),
            ("call-seconds carried", f(self.call_seconds, " s")),
            (
                "bot audio received",
                f"{self.bot_audio_s:.0f} s"
                + (
                    f" ({100 * self.bot_audio_s / self.call_seconds:.0f} % of call time)"
                    if self.call_seconds
                    else ""
                ),
            ),
            (
                "underruns (bridge)",
                "-"
                if self.underruns is None
                else f"{self.underruns} ({f(self.underrun_ms, ' ms', 0)} dry)",
            ),
            (
                "caller-heard gaps",
                f"{self.caller_heard_gaps} ({self.caller_heard_gap_ms:.0f} ms, "
                "pauses between prompts included)",
            ),
            (
                "stale frames after clear",
                f"{self.stale_frames} heard, "
                f"{'-' if self.bridge_stale_frames is None else self.bridge_stale_frames} "
                "sent (bridge)",
            ),
            (
                "inbound lag p50 / p99",
                f"{f(self.inbound_lag_ms_p50, ' ms', 2)} / {f(self.inbound_lag_ms_p99, ' ms', 2)}",
            ),
            ("bridge CPU per call-second", f(self.bridge_cpu_ms_per_call_second, " ms", 2)),
            ("bridge RSS per call", f(self.bridge_rss_mb_per_call, " MB", 3)),
            ("bridge CPU (whole run)", f(cpu_pct, " % of one core")),
            (
                "bridge RSS before / peak",
                f"{f(b.rss_mb_before, ' MB')} / {f(b.rss_mb_peak, ' MB')}",
            ),
            (
                "barge-in onset→clear p50 / p95",
                f"{f(self.barge_in_clear_ms_p50, ' ms', 0)} / "
                f"{f(self.barge_in_clear_ms_p95, ' ms', 0)}",
            ),
            ("barge-ins (without clear)", f"{self.barge_ins} ({self.barge_ins_without_clear})"),
            (
                "start→first bot audio p50 / p95",
                f"{f(self.first_audio_ms_p50, ' ms', 0)} / {f(self.first_audio_ms_p95, ' ms', 0)}",
            ),
            (
                "DTMF→first audio p50 / p95",
                f"{f(self.dtmf_first_audio_ms_p50, ' ms', 0)} / "
                f"{f(self.dtmf_first_audio_ms_p95, ' ms', 0)}",
            ),
            ("speech server CPU", f(speech_pct, " % of one core")),
            (
                "generator CPU",
                f"{f(gen_pct, ' % of one core')} over {self.generator_workers} worker(s)",
            ),
            (
                "generator loop lag p99 / worst tick",
                f"{f(self.generator_loop_lag_ms_p99, ' ms', 2)} / "
                f"{f(self.generator_max_tick_lag_ms, ' ms')}",
            ),
            ("verdict", "PASS" if self.passed else "FAIL"),
        ]
        width = max(len(k) for k, _ in rows)
        lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
        lines += [f"  failure: {reason}" for reason in self.failures]
        return "\n".join(lines)


def aggregate(
    calls: Sequence[CallSummary],
    *,
    wall_s: float,
    bridge: ProcessFigures,
    speech_server: ProcessFigures,
    inbound_lag_ms: tuple[float | None, float | None],
    generator_workers: int,
    generator_cpu_s: float,
    generator_loop_lag_ms: Sequence[float],
    counters: BridgeCounters | None = None,
) -> LoadReport:
    call_seconds = sum(c.call_s for c in calls)
    clears = [x for c in calls for x in c.barge_in_clear_ms]
    dtmf = [x for c in calls for x in c.dtmf_first_audio_ms]
    first = [c.first_audio_ms for c in calls if c.first_audio_ms is not None]
    cpu_per_call_s = None
    if bridge.cpu_s is not None and call_seconds > 0:
        cpu_per_call_s = 1000 * bridge.cpu_s / call_seconds
    rss_per_call = None
    if bridge.rss_mb_peak is not None and bridge.rss_mb_before is not None and calls:
        rss_per_call = max(0.0, bridge.rss_mb_peak - bridge.rss_mb_before) / len(calls)
    failed = [c for c in calls if c.failed]
    counters = counters or BridgeCounters()
    return LoadReport(
        calls=len(calls),
        failed_calls=len(failed),
        underruns=None if counters.underruns is None else round(counters.underruns),
        underrun_ms=None if counters.underrun_s is None else 1000 * counters.underrun_s,
        caller_heard_gaps=sum(c.caller_heard_gaps for c in calls),
        caller_heard_gap_ms=sum(c.caller_heard_gap_ms for c in calls),
        stale_frames=sum(c.stale_frames for c in calls),
        bridge_stale_frames=(
            None if counters.stale_frames is None else round(counters.stale_frames)
        ),
        inbound_lag_ms_p50=inbound_lag_ms[0],
        inbound_lag_ms_p99=inbound_lag_ms[1],
        bridge_cpu_ms_per_call_second=cpu_per_call_s,
        bridge_rss_mb_per_call=rss_per_call,
        barge_in_clear_ms_p50=percentile(clears, 0.50),
        barge_in_clear_ms_p95=percentile(clears, 0.95),
        dtmf_first_audio_ms_p50=percentile(dtmf, 0.50),
        dtmf_first_audio_ms_p95=percentile(dtmf, 0.95),
        first_audio_ms_p50=percentile(first, 0.50),
        first_audio_ms_p95=percentile(first, 0.95),
        barge_ins=sum(c.barge_ins for c in calls),
        barge_ins_without_clear=sum(c.barge_ins_without_clear for c in calls),
        call_seconds=call_seconds,
        bot_audio_s=sum(c.media_received for c in calls) * FRAME_S,
        wall_s=wall_s,
        bridge=bridge,
        speech_server=speech_server,
        generator_workers=generator_workers,
        generator_cpu_s=generator_cpu_s,
        generator_loop_lag_ms_p99=percentile(generator_loop_lag_ms, 0.99),
        generator_max_tick_lag_ms=max((c.max_tick_lag_ms for c in calls), default=0.0),
        generator_late_ticks=sum(c.late_ticks for c in calls),
        failures=[f"call {c.index}: {c.failed}" for c in failed[:5]],
    )
