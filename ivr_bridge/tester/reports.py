"""Machine-readable results: one JSON document per run, and JUnit XML for CI gates.

JUnit has no word for "the machine was too busy to judge": an inconclusive scenario is written
as ``<skipped>`` with the reason, so a CI gate never turns it green or red by accident, and the
tester's exit code (3) says it apart.
"""

from __future__ import annotations

import statistics
import xml.etree.ElementTree as ET
from typing import Any

from ivr_bridge.sim.scenario.audio_timing import percentile, turn_latencies
from ivr_bridge.tester.runner import RunResult, ScenarioResult, SuiteResult


def scenario_latencies(result: ScenarioResult) -> list[float]:
    """Every answered turn's latency over the scenario's calls."""
    return [x for run in result.runs if run.result for x in turn_latencies(run.result.recorder)]


def call_metrics(run: RunResult) -> dict[str, Any]:
    """Timing figures of one call, from the caller's line (call ms)."""
    if run.result is None:
        return {}
    latencies = turn_latencies(run.result.recorder)
    utterances = run.result.utterances
    return {
        "turn_latency_ms": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "values": [round(x, 1) for x in latencies],
        },
        "bot_utterances": len(utterances),
        "bot_speech_s": round(sum(u.end_ms - u.start_ms for u in utterances) / 1000, 2),
        "call_s": round(run.result.recorder.line_end_ms / 1000, 2),
        "caller_lag_ms": round(run.result.lag_ms, 1),
    }


def run_json(run: RunResult) -> dict[str, Any]:
    result = run.result
    return {
        "index": run.index,
        "seed": run.seed,
        "status": run.status,
        "wall_s": round(run.wall_s, 2),
        "reason": run.reason(),
        "error": run.error,
        "note": run.note or None,
        "call_sid": result.call_sid if result else None,
        "ended": result.verdict.describe() if result else None,
        "out_dir": str(run.out_dir) if run.out_dir else None,
        "checks": [
            {"name": c.name, "status": c.status, "detail": c.detail} for c in run.all_checks()
        ],
        "metrics": call_metrics(run),
    }


def scenario_json(result: ScenarioResult) -> dict[str, Any]:
    s = result.scenario
    latencies = scenario_latencies(result)
    return {
        "name": s.name,
        "description": s.description,
        "tags": s.tags,
        "target": s.target.describe(),
        "status": result.status,
        "runs": len(result.runs),
        "passed_runs": result.passed_runs,
        "pass_rate": round(result.pass_rate, 3),
        "required_pass_rate": s.pass_rate,
        "turn_latency_ms": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95)},
        "calls": [run_json(run) for run in result.runs],
    }


def suite_json(result: SuiteResult) -> dict[str, Any]:
    walls = [run.wall_s for s in result.scenarios for run in s.runs]
    return {
        "suite": result.suite.suite.name,
        "file": str(result.suite.path),
        "status": result.status,
        "started_at": result.started_at,
        "wall_s": round(result.wall_s, 2),
        "parallel": result.parallel,
        "calls": len(walls),
        "call_wall_s_median": round(statistics.median(walls), 2) if walls else None,
        "counts": {k: result.count(k) for k in ("pass", "fail", "inconclusive")},
        "scenarios": [scenario_json(s) for s in result.scenarios],
    }


def junit_xml(result: SuiteResult) -> str:
    suite = ET.Element(
        "testsuite",
        name=result.suite.suite.name,
        tests=str(len(result.scenarios)),
        failures=str(result.count("fail")),
        skipped=str(result.count("inconclusive")),
        errors="0",
        time=f"{result.wall_s:.2f}",
    )
    for scenario in result.scenarios:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=result.suite.suite.name,
            name=scenario.scenario.name,
            time=f"{sum(r.wall_s for r in scenario.runs):.2f}",
        )
        summary = (
            f"{scenario.passed_runs}/{len(scenario.runs)} calls passed "
            f"(needs {scenario.scenario.pass_rate:.0%})"
        )
        first_bad = next((r for r in scenario.runs if r.status != "pass"), None)
        reason = f"{summary}; call #{first_bad.index}: {first_bad.reason()}" if first_bad else ""
        if scenario.status == "fail":
            ET.SubElement(case, "failure", message=reason, type="ScenarioFailed").text = reason
        elif scenario.status == "inconclusive":
            ET.SubElement(case, "skipped", message=f"inconclusive: {reason}")
        lines = [
            f"call #{r.index}: {r.status} in {r.wall_s:.1f} s {r.reason()}".rstrip()
            for r in scenario.runs
        ]
        ET.SubElement(case, "system-out").text = "\n".join(lines)
    ET.indent(suite)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
    )
