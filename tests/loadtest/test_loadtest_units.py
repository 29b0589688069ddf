"""Load-test building blocks: /proc sampling, histogram quantiles, underruns, aggregation."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from ivr_bridge.loadtest.caller import CallSummary, build_script, count_stale_frames
from ivr_bridge.loadtest.procstat import read_proc, read_tree
from ivr_bridge.loadtest.promtext import counter_total, parse_histogram
from ivr_bridge.loadtest.report import BridgeCounters, ProcessFigures, aggregate, percentile
from ivr_bridge.loadtest.workers import plan_workers
from ivr_bridge.sim.scenario.script import BargeInStep, PressStep
from ivr_bridge.sim.twilio.jitter import UnderrunCounter

METRICS = """\
# HELP ivr_event_loop_lag_seconds lag
# TYPE ivr_event_loop_lag_seconds histogram
ivr_event_loop_lag_seconds_bucket{le="0.001"} 50.0
ivr_event_loop_lag_seconds_bucket{le="0.01"} 90.0
ivr_event_loop_lag_seconds_bucket{le="0.1"} 100.0
ivr_event_loop_lag_seconds_bucket{le="+Inf"} 100.0
ivr_event_loop_lag_seconds_count 100.0
ivr_event_loop_lag_seconds_sum 0.4
"""


def test_read_proc_reports_this_process_cpu_and_memory() -> None:
    before = read_proc(os.getpid())
    started = time.process_time()
    while time.process_time() - started < 0.08:  # burn 80 ms of CPU
        sum(i * i for i in range(10_000))
    after = read_proc(os.getpid())
    assert after.cpu_s - before.cpu_s > 0.02  # /proc ticks are 10 ms: allow for rounding
    assert 5 * 1024 * 1024 < after.rss_bytes < 4 * 1024**3


def test_read_proc_parses_a_command_name_with_spaces_and_parens(tmp_path: Path) -> None:
    proc = tmp_path / "42"
    proc.mkdir()
    fields = ["S"] + ["0"] * 10 + ["250", "50"] + ["0"] * 30
    (proc / "stat").write_text("42 (my (odd) name) " + " ".join(fields) + "\n")
    (proc / "statm").write_text("1000 300 0 0 0 0 0\n")
    sample = read_proc(42, proc_root=tmp_path)
    assert sample.cpu_s == pytest.approx(300 / os.sysconf("SC_CLK_TCK"))
    assert sample.rss_bytes == 300 * os.sysconf("SC_PAGE_SIZE")


def test_read_tree_sums_a_supervisor_and_its_workers(tmp_path: Path) -> None:
    """``serve --workers 2``: the CPU a run costs is the parent's and every worker's."""

    def process(pid: int, ticks: int, pages: int, children: list[int]) -> None:
        root = tmp_path / str(pid)
        (root / "task" / str(pid)).mkdir(parents=True)
        fields = ["S"] + ["0"] * 10 + [str(ticks), "0"] + ["0"] * 30
        (root / "stat").write_text(f"{pid} (python) " + " ".join(fields) + "\n")
        (root / "statm").write_text(f"1000 {pages} 0 0 0 0 0\n")
        (root / "task" / str(pid) / "children").write_text(" ".join(map(str, children)))

    process(10, 100, 10, [11, 12, 99])  # 99 exited before it was read: left out
    process(11, 200, 20, [])
    process(12, 300, 30, [13])
    process(13, 400, 40, [])
    sample = read_tree(10, proc_root=tmp_path)
    assert sample.cpu_s == pytest.approx(1000 / os.sysconf("SC_CLK_TCK"))
    assert sample.rss_bytes == 100 * os.sysconf("SC_PAGE_SIZE")
    with pytest.raises(ProcessLookupError):
        read_tree(99, proc_root=tmp_path)


def test_read_proc_of_a_gone_process_raises(tmp_path: Path) -> None:
    with pytest.raises(ProcessLookupError):
        read_proc(99, proc_root=tmp_path)


def test_histogram_quantiles_interpolate_inside_buckets() -> None:
    hist = parse_histogram(METRICS, "ivr_event_loop_lag_seconds")
    assert hist is not None and hist.count == 100
    assert hist.quantile(0.5) == pytest.approx(0.001)
    assert hist.quantile(0.7) == pytest.approx(0.001 + 0.009 * 20 / 40)
    assert hist.quantile(0.99) == pytest.approx(0.01 + 0.09 * 9 / 10)


def test_histogram_difference_covers_only_the_run() -> None:
    before = parse_histogram(METRICS, "ivr_event_loop_lag_seconds")
    after_text = METRICS.replace('le="0.1"} 100.0', 'le="0.1"} 200.0').replace(
        'le="+Inf"} 100.0', 'le="+Inf"} 200.0'
    )
    after = parse_histogram(after_text, "ivr_event_loop_lag_seconds")
    assert after is not None
    run = after.minus(before)
    assert run.count == 100
    assert run.quantile(0.5) > 0.01  # the run's 100 samples all sat in the 10-100 ms bucket


def test_missing_histogram_is_none() -> None:
    assert parse_histogram("", "ivr_event_loop_lag_seconds") is None


def test_underrun_counted_when_audio_resumes_inside_an_utterance() -> None:
    counter = UnderrunCounter(max_gap_ms=500)
    for bot_bytes in (160, 160, 0, 0, 160, 160):
        counter.played(bot_bytes)
    assert counter.underruns == 1
    assert counter.missing_ms == 40


def test_short_frame_then_more_audio_is_an_underrun() -> None:
    counter = UnderrunCounter()
    for bot_bytes in (160, 80, 160):
        counter.played(bot_bytes)
    assert (counter.underruns, counter.missing_ms) == (1, 10)


def test_end_of_utterance_and_clear_are_not_underruns() -> None:
    counter = UnderrunCounter(max_gap_ms=100)
    for bot_bytes in (160, 40, *[0] * 10, 160, 160):  # 200+ ms of silence: a new utterance
        counter.played(bot_bytes)
    counter.played(0)
    counter.cleared()
    counter.played(160)
    assert counter.underruns == 0
    counter.played(0)
    counter.played(0)
    assert counter.underruns == 0  # a gap with no audio after it is not (yet) an underrun


def test_script_fills_the_call_with_interruptions_and_presses() -> None:
    script = build_script(20, 0.5, random.Random(3))
    assert script.caller.max_duration_ms == 20_000
    presses = [s for s in script.steps if isinstance(s, PressStep)]
    barge_ins = [s for s in script.steps if isinstance(s, BargeInStep)]
    assert len(presses) >= 10
    assert 0 < len(barge_ins) < len(presses)
    never = build_script(20, 0.0, random.Random(3))
    assert not any(isinstance(s, BargeInStep) for s in never.steps)


def test_workers_share_calls_and_starts_spread_over_the_ramp() -> None:
    common = dict(voice_url="http://x", auth_token=None, duration_s=1, barge_in_rate=0, seed=1)
    specs = plan_workers(10, 3, ramp_s=5.0, t0=100.0, **common)
    indexes = sorted(i for s in specs for i in s.call_indexes)
    assert indexes == list(range(10))
    offsets = sorted(o for s in specs for o in s.start_offsets_s)
    assert offsets[0] == 0 and offsets[-1] == pytest.approx(4.5)


def test_aggregate_folds_calls_into_the_headline_figures() -> None:
    calls = [
        CallSummary(
            index=0,
            call_s=20,
            barge_in_clear_ms=[200, 220],
            dtmf_first_audio_ms=[300],
            media_received=400,
        ),
        CallSummary(
            index=1, call_s=20, caller_heard_gaps=2, caller_heard_gap_ms=60, stale_frames=1
        ),
        CallSummary(index=2, call_s=3, failed="call ended early"),
    ]
    report = aggregate(
        calls,
        wall_s=30,
        bridge=ProcessFigures(cpu_s=0.43, rss_mb_before=50, rss_mb_peak=53),
        speech_server=ProcessFigures(),
        inbound_lag_ms=(1.0, 5.0),
        generator_workers=1,
        generator_cpu_s=2.0,
        generator_loop_lag_ms=[1.0, 2.0],
        counters=BridgeCounters(underruns=4, underrun_s=0.25, stale_frames=0),
    )
    assert (report.calls, report.failed_calls, report.underruns, report.stale_frames) == (
        3,
        1,
        4,
        1,
    )
    assert (report.caller_heard_gaps, report.underrun_ms) == (2, 250)
    assert report.bridge_cpu_ms_per_call_second == pytest.approx(10.0)
    assert report.bridge_rss_mb_per_call == pytest.approx(1.0)
    assert report.barge_in_clear_ms_p95 == 220
    assert not report.passed
    assert report.bot_audio_s == pytest.approx(8.0)  # 400 frames of 20 ms
    assert "8 s (19 % of call time)" in report.table()
    assert "call 2: call ended early" in report.table()
    for key in (
        "calls",
        "failed_calls",
        "underruns",
        "caller_heard_gaps",
        "stale_frames",
        "inbound_lag_ms_p99",
        "bridge_cpu_ms_per_call_second",
        "bridge_rss_mb_per_call",
        "barge_in_clear_ms_p95",
    ):
        assert key in report.to_json()


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([5, 1, 3, 2, 4], 0.5) == 3
    assert percentile(list(range(1, 101)), 0.99) == 99


def _aggregate_clean(counters: BridgeCounters) -> bool:
    report = aggregate(
        [CallSummary(index=0, call_s=20)],
        wall_s=25,
        bridge=ProcessFigures(),
        speech_server=ProcessFigures(),
        inbound_lag_ms=(1.0, 5.0),
        generator_workers=1,
        generator_cpu_s=1.0,
        generator_loop_lag_ms=[1.0],
        counters=counters,
    )
    return report.passed


def test_a_run_passes_only_when_the_bridge_reported_no_underruns() -> None:
    assert _aggregate_clean(BridgeCounters(underruns=0, underrun_s=0, stale_frames=0))
    assert not _aggregate_clean(BridgeCounters(underruns=1, underrun_s=0.02, stale_frames=0))
    assert not _aggregate_clean(BridgeCounters(underruns=0, underrun_s=0, stale_frames=1))
    assert not _aggregate_clean(BridgeCounters())  # /metrics unreadable: not a pass


def _mark(name: str) -> dict:
    return {"event": "mark_received", "name": name}


def test_stale_frames_are_marks_of_a_cleared_generation_after_the_clear() -> None:
    events = [
        _mark("ivr.0.1"),
        _mark("ivr.0.2"),
        {"event": "clear"},
        _mark("ivr.0.3"),  # the cut prompt's frame, after the clear: stale
        _mark("ivr.1.4"),  # the reprompt after the barge-in: legitimate speech
        _mark("ivr.1.5"),
        {"event": "clear"},
        _mark("ivr.3.6"),  # generations may skip (a clear with nothing to clear)
    ]
    assert count_stale_frames(events) == 1


def test_speech_after_a_barge_in_is_not_stale_and_foreign_marks_are_ignored() -> None:
    events = [_mark("ivr.0.1"), {"event": "clear"}, _mark("ivr.1.2"), _mark("greeting-done")]
    assert count_stale_frames(events) == 0


def test_counter_total_reads_the_bridge_underrun_counter() -> None:
    text = (
        "# HELP ivr_playback_underruns_total x\n"
        "# TYPE ivr_playback_underruns_total counter\n"
        "ivr_playback_underruns_total 3.0\n"
    )
    assert counter_total(text, "ivr_playback_underruns_total") == 3.0
    assert counter_total(text, "ivr_playback_stale_frames_total") == 0.0
