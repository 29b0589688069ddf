"""What keeping call records costs the bridge: CPU per call-second with records off and on.

Runs ``ivr-bridge loadtest`` with the same calls, flow, seed and duration, alternating
``IVR_RECORDS=off`` and ``IVR_RECORDS=audio`` (the costliest mode: both channels kept, a stereo
WAV written per call) for ``--rounds`` rounds, so a machine that slows down during the run
slows both sides alike. Prints each run and the overhead of the median "audio" run over the
median "off" run; exits 1 when it exceeds ``--limit`` (10 %), 2 when the runs did not do the
same work (a failed call, or bot audio received differing by more than 5 %: the figures would
not compare like with like). Underruns and lag are printed, not required to be zero: 100 calls
is past this 2-core machine's strict capacity (75), and the question is the cost of records.

    .venv/bin/python benchmarks/bench_records_cpu.py --calls 100 --duration 30 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

IVR_BRIDGE = Path(sys.executable).with_name("ivr-bridge")


def run_once(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        str(IVR_BRIDGE),
        "loadtest",
        "--calls",
        str(args.calls),
        "--duration",
        str(args.duration),
        "--ramp",
        str(args.ramp),
        "--records",
        mode,
        "--seed",
        str(args.seed),
        "--json",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if not done.stdout.strip():
        raise SystemExit(f"loadtest --records {mode} printed nothing:\n{done.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    report["mode"] = mode
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--ramp", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--limit", type=float, default=10.0, help="allowed overhead, percent")
    args = parser.parse_args()

    runs: list[dict[str, Any]] = []
    header = f"{'mode':<6} {'CPU ms/call-s':>13} {'bot audio s':>11} {'underruns':>9}"
    print(f"{header} {'lag p99':>8}  failed")
    for _ in range(args.rounds):
        for mode in ("off", "audio"):
            report = run_once(mode, args)
            runs.append(report)
            print(
                f"{mode:<6} {report['bridge_cpu_ms_per_call_second']:>13.2f}"
                f" {report['bot_audio_s']:>11.0f} {report['underruns']:>9}"
                f" {report['inbound_lag_ms_p99'] or 0:>6.0f} ms  {report['failed_calls']}",
                flush=True,
            )
    audio_s = [r["bot_audio_s"] for r in runs]
    if any(r["failed_calls"] for r in runs) or max(audio_s) > 1.05 * min(audio_s):
        print("inconclusive: the runs did not do the same work; figures not compared")
        return 2
    off = statistics.median(r["bridge_cpu_ms_per_call_second"] for r in runs if r["mode"] == "off")
    on = statistics.median(r["bridge_cpu_ms_per_call_second"] for r in runs if r["mode"] == "audio")
    overhead = 100 * (on - off) / off
    print(
        f"records off {off:.2f} ms, audio {on:.2f} ms of bridge CPU per call-second: "
        f"{overhead:+.1f} % (limit {args.limit:.0f} %)"
    )
    return 0 if overhead <= args.limit else 1


if __name__ == "__main__":
    sys.exit(main())
