"""`ivr-bridge loadtest` end to end at a tiny size: the harness itself must keep working.

Only the harness is checked here (processes start, calls run, the report carries every figure);
capacity and latency goals belong to real load runs, not to a test on a shared machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

FLOWS_DIR = Path(__file__).parents[2] / "flows"
REQUIRED = {
    "calls",
    "failed_calls",
    "underruns",
    "stale_frames",
    "inbound_lag_ms_p99",
    "bridge_cpu_ms_per_call_second",
    "bridge_rss_mb_per_call",
    "barge_in_clear_ms_p95",
}


def run_loadtest(*args: str, timeout_s: float) -> dict[str, Any]:
    """``ivr-bridge loadtest ... --json`` as a user runs it; its JSON report."""
    command = [sys.executable, "-m", "ivr_bridge", "loadtest", *args]
    completed = subprocess.run(
        [*command, "--json", "--flows-dir", str(FLOWS_DIR)],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.upper().startswith("IVR_SPEECH_")},
        timeout=timeout_s,
        check=False,
    )
    assert completed.returncode in (0, 1), completed.stderr[-2000:]  # 2 would be a usage error
    report: dict[str, Any] = json.loads(completed.stdout)
    return report


def test_a_small_run_reports_every_figure() -> None:
    report = run_loadtest("--calls", "3", "--ramp", "0.5", "--duration", "4", timeout_s=90)
    assert REQUIRED <= report.keys()
    assert report["calls"] == 3
    assert report["failed_calls"] == 0, report.get("failures")
    assert report["call_seconds"] >= 3 * 3.5
    assert report["bridge_rss_mb_per_call"] >= 0  # 0 when the calls needed no new memory
    assert report["bridge"]["rss_mb_before"] > 0
    assert report["bridge"]["rss_mb_peak"] >= report["bridge"]["rss_mb_before"]
    assert report["bridge"]["cpu_s"] > 0


def test_a_run_against_two_bridge_workers_covers_both() -> None:
    report = run_loadtest(
        "--calls", "4", "--ramp", "0.5", "--duration", "4", "--bridge-workers", "2", timeout_s=150
    )
    assert report["failed_calls"] == 0, report.get("failures")
    assert report["underruns"] is not None  # one /metrics for both workers was read
    assert report["first_audio_ms_p95"] is not None
    # The supervisor and two workers, each with its recognisers loaded: far more than one.
    assert report["bridge"]["rss_mb_before"] > 300
