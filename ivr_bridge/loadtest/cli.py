"""``ivr-bridge loadtest`` argument parsing and output (the lead wires the subcommand)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ivr_bridge.loadtest.config import DEFAULT_FLOW, LoadTestConfig
from ivr_bridge.loadtest.runner import Progress, run_loadtest


def add_loadtest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calls", type=int, required=True, help="concurrent simulated calls")
    parser.add_argument("--ramp", type=float, default=5.0, help="seconds over which calls start")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds each call lasts")
    parser.add_argument(
        "--barge-in-rate",
        type=float,
        default=0.5,
        help="share of bot prompts the caller interrupts by speaking (0..1, default 0.5)",
    )
    parser.add_argument(
        "--url",
        help="load an already running bridge at this base URL instead of starting one "
        "(it must have the load flow and TWILIO_AUTH_TOKEN = --auth-token)",
    )
    parser.add_argument("--bridge-pid", type=int, help="with --url: its PID, for CPU/RSS figures")
    parser.add_argument("--auth-token", default="loadtest-auth-token", help="Twilio auth token")
    parser.add_argument("--workers", type=int, default=0, help="load-generator processes")
    parser.add_argument(
        "--bridge-workers",
        type=int,
        default=1,
        help="processes of the bridge it starts (serve --workers N; above 1 with a private "
        "redis-server); CPU figures cover them all",
    )
    parser.add_argument("--flows-dir", type=Path, default=Path("flows"))
    parser.add_argument("--flow", default=DEFAULT_FLOW, help="flow file the calls run")
    parser.add_argument(
        "--speech-realtime-factor", type=float, default=0.8, help="speech-server pacing"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--records",
        choices=("off", "metadata", "audio"),
        default="metadata",
        help="IVR_RECORDS of the bridge it starts (compare the CPU figures of off and audio)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _show_progress(p: Progress) -> None:
    cpu = "-" if p.bridge_cpu_pct is None else f"{p.bridge_cpu_pct:5.1f}%"
    rss = "-" if p.bridge_rss_mb is None else f"{p.bridge_rss_mb:6.1f} MB"
    active = p.started - p.finished
    print(
        f"\r{p.elapsed_s:5.1f} s  active {active:4d}  done {p.finished:4d}/{p.total}"
        f"  failed {p.failed:3d}  bridge CPU {cpu}  RSS {rss}",
        end="",
        file=sys.stderr,
        flush=True,
    )


def config_from_args(args: argparse.Namespace) -> LoadTestConfig:
    if args.calls < 1:
        raise ValueError("--calls must be at least 1")
    if not 0.0 <= args.barge_in_rate <= 1.0:
        raise ValueError("--barge-in-rate is a share between 0 and 1")
    if args.bridge_workers < 1:
        raise ValueError("--bridge-workers must be at least 1")
    if args.bridge_workers > 1 and args.url is not None:
        raise ValueError("--bridge-workers starts the bridge: it cannot go with --url")
    if args.duration <= 0 or args.ramp < 0:
        raise ValueError("--duration must be positive and --ramp not negative")
    flows_dir: Path = args.flows_dir
    if args.url is None and not (flows_dir / args.flow).is_file():
        raise ValueError(f"flow {args.flow} not found in {flows_dir} (use --flows-dir)")
    return LoadTestConfig(
        calls=args.calls,
        ramp_s=args.ramp,
        duration_s=args.duration,
        barge_in_rate=args.barge_in_rate,
        url=args.url,
        bridge_pid=args.bridge_pid,
        workers=args.workers,
        flow=args.flow,
        flows_dir=flows_dir,
        auth_token=args.auth_token,
        speech_realtime_factor=args.speech_realtime_factor,
        seed=args.seed,
        bridge_workers=args.bridge_workers,
        records=args.records,
    )


def run_loadtest_from_args(args: argparse.Namespace) -> int:
    """Exit 0 when the run passed (no failed calls, underruns, stale frames; lag p99 < 20 ms)."""
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"ivr-bridge loadtest: {exc}", file=sys.stderr)
        return 2
    report = run_loadtest(config, on_progress=None if args.json else _show_progress)
    if args.json:
        print(report.dumps())
    else:
        print(file=sys.stderr)
        print(report.table())
    return 0 if report.passed else 1
