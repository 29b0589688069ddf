"""``ivr-bridge test SUITE``: run a suite of phone scenarios and gate CI on it.

Exit codes: 0 every scenario reached its pass rate; 1 one did not (or the suite could not run a
call it planned); 2 bad usage (the suite is broken: every problem with file and line); 3 nothing
failed, but some timing could not be judged (the machine fell behind; run again, or at a lower
``speed``). Progress goes to stderr one line per call as it ends, the summary to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from ivr_bridge.errors import IvrBridgeError
from ivr_bridge.logs import configure_logging
from ivr_bridge.sim.scenario.hearing import BotTranscriber
from ivr_bridge.tester.html_report import html_report
from ivr_bridge.tester.reports import junit_xml, suite_json
from ivr_bridge.tester.runner import RunResult, SuiteResult, needs_words, run_suite
from ivr_bridge.tester.suite import LoadedSuite, SuiteError, load_suite, suite_json_schema
from ivr_bridge.tester.targets import open_targets

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INCONCLUSIVE = 0, 1, 2, 3
MAX_PARALLEL = 50
"""More simultaneous calls than this measure the machine, not the agent."""


def add_test_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", nargs="?", type=Path, help="suite YAML file")
    parser.add_argument("--out", type=Path, default=Path("test-out"), help="recordings, reports")
    parser.add_argument("--html", type=Path, help="HTML report (default: OUT/report.html)")
    parser.add_argument("--junit", type=Path, help="JUnit XML for CI (default: OUT/junit.xml)")
    parser.add_argument("--json", type=Path, help="JSON results (default: OUT/results.json)")
    parser.add_argument("--repeat", type=int, help="calls per scenario (overrides the suite)")
    parser.add_argument(
        "--parallel", type=int, default=4, help=f"calls at once (1-{MAX_PARALLEL}; default 4)"
    )
    parser.add_argument(
        "--tag", action="append", default=[], help="run only scenarios with this tag (repeatable)"
    )
    parser.add_argument(
        "--auth-token",
        default=os.environ.get("TWILIO_AUTH_TOKEN"),
        help="sign requests to url targets (default: $TWILIO_AUTH_TOKEN)",
    )
    parser.add_argument(
        "--schema", action="store_true", help="print the suite JSON Schema and exit"
    )


async def run_tests_from_args(args: argparse.Namespace) -> int:
    if args.schema:
        print(json.dumps(suite_json_schema(), indent=2))
        return EXIT_OK
    # The bridge under test runs in this process: its call logs would bury the progress lines.
    configure_logging("console", os.environ.get("IVR_LOG_LEVEL", "warning"))
    problem = _usage_problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        loaded = await asyncio.to_thread(load_suite, args.suite)
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.tag:
        chosen = [s for s in loaded.scenarios if set(s.tags) & set(args.tag)]
        if not chosen:
            print(f"error: no scenario has tag {', '.join(args.tag)}", file=sys.stderr)
            return EXIT_USAGE
        loaded = loaded.model_copy(update={"scenarios": chosen})
    transcriber = None
    if needs_words(loaded):
        from ivr_bridge.sim.scenario.hearing import bot_transcriber_or_note

        transcriber = await bot_transcriber_or_note()
    calls = sum(args.repeat or s.repeat for s in loaded.scenarios)
    print(
        f"{loaded.suite.name}: {len(loaded.scenarios)} scenarios, {calls} calls, "
        f"{args.parallel} at a time",
        file=sys.stderr,
    )
    try:
        if loaded.answering() is not None:
            from ivr_bridge.tester.answering import run_answer_suite

            result = await run_answer_suite(
                loaded,
                out_dir=args.out,
                parallel=args.parallel,
                repeat=args.repeat,
                transcriber=transcriber,
                progress=_print_progress,
            )
        else:
            result = await _place_calls(loaded, args, transcriber)
    except IvrBridgeError as exc:  # e.g. a broken flow in flows_dir: nothing was dialled
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    paths = await asyncio.to_thread(_write_reports, result, args)
    print(_summary(result))
    for name, path in paths.items():
        print(f"{name}: {path}")
    return {"pass": EXIT_OK, "fail": EXIT_FAILED, "inconclusive": EXIT_INCONCLUSIVE}[result.status]


async def _place_calls(
    loaded: LoadedSuite, args: argparse.Namespace, transcriber: BotTranscriber | None
) -> SuiteResult:
    async with open_targets(loaded, args.auth_token) as targets:
        return await run_suite(
            loaded,
            targets,
            out_dir=args.out,
            parallel=args.parallel,
            repeat=args.repeat,
            transcriber=transcriber,
            progress=_print_progress,
        )


def _usage_problem(args: argparse.Namespace) -> str | None:
    if args.suite is None:
        return "give a suite file (or --schema)"
    if not 1 <= args.parallel <= MAX_PARALLEL:
        return f"--parallel must be 1-{MAX_PARALLEL} (got {args.parallel})"
    if args.repeat is not None and args.repeat < 1:
        return f"--repeat must be at least 1 (got {args.repeat})"
    return None


def _print_progress(run: RunResult, done: int, total: int) -> None:
    shown = {"pass": "pass", "fail": "FAIL", "inconclusive": "inconclusive"}[run.status]
    reason = f"  {run.reason()[:100]}" if run.status != "pass" else ""
    width = len(str(total))
    print(
        f"[{done:>{width}}/{total}] {shown:<12} {run.scenario} #{run.index} "
        f"({run.wall_s:.1f} s){reason}",
        file=sys.stderr,
        flush=True,
    )


def _write_reports(result: SuiteResult, args: argparse.Namespace) -> dict[str, Path]:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "html": args.html or out / "report.html",
        "junit": args.junit or out / "junit.xml",
        "json": args.json or out / "results.json",
    }
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    paths["html"].write_text(html_report(result), encoding="utf-8")
    paths["junit"].write_text(junit_xml(result), encoding="utf-8")
    paths["json"].write_text(
        json.dumps(suite_json(result), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return paths


def _summary(result: SuiteResult) -> str:
    lines = []
    width = max(len(s.scenario.name) for s in result.scenarios)
    for s in result.scenarios:
        shown = {"pass": "pass", "fail": "FAIL", "inconclusive": "inconclusive"}[s.status]
        first_bad = next((r for r in s.runs if r.status != "pass"), None)
        reason = f"  {first_bad.reason()[:110]}" if first_bad and s.status != "pass" else ""
        lines.append(
            f"{s.scenario.name:<{width}}  {shown:<12} {s.passed_runs}/{len(s.runs)}{reason}"
        )
    counts = ", ".join(f"{result.count(k)} {k}" for k in ("pass", "fail", "inconclusive"))
    lines.append(f"{result.suite.suite.name}: {counts} in {result.wall_s:.1f} s")
    return "\n".join(lines)
