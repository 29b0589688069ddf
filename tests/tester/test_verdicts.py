"""A scenario's verdict over its repeats, and how CI gates read it (JUnit, exit code)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ivr_bridge.sim.scenario.audio_timing import percentile
from ivr_bridge.sim.scenario.recording import CallRecorder
from ivr_bridge.sim.scenario.result import CallResult, ExpectationResult, Status
from ivr_bridge.sim.twilio.twiml import Verdict
from ivr_bridge.tester.reports import junit_xml, suite_json
from ivr_bridge.tester.runner import RunResult, ScenarioResult, SuiteResult
from ivr_bridge.tester.suite import parse_suite

SUITE = """\
name: gates
defaults: {target: {flow: f.yaml}}
scenarios:
  - {name: steady, steps: [hangup]}
  - {name: flaky, steps: [hangup], repeat: 5, pass_rate: 0.8}
  - {name: busy machine, steps: [hangup], repeat: 2}
"""


def run(index: int, status: Status | None) -> RunResult:
    """A finished call whose one check came out ``status`` (None: it could not be placed)."""
    if status is None:
        return RunResult("x", index, 1.0, None, error="the call could not be placed: refused")
    check = ExpectationResult("turn latency ≤ 800 ms", status, "910 ms")
    result = CallResult("CA1", "MZ1", Verdict("hangup"), CallRecorder(), None, 1.0, [check])
    return RunResult("x", index, 1.0, result)


def suite_result(tmp_path: Path, outcomes: dict[str, list[Status | None]]) -> SuiteResult:
    loaded = parse_suite(SUITE, tmp_path / "gates.yaml")
    scenarios = [
        ScenarioResult(s, [run(i + 1, st) for i, st in enumerate(outcomes[s.name])])
        for s in loaded.scenarios
    ]
    return SuiteResult(loaded, scenarios, parallel=2, started_at=0.0, wall_s=3.0)


def test_pass_rate_over_repeats_decides_and_unjudged_repeats_never_fail(tmp_path: Path) -> None:
    result = suite_result(
        tmp_path,
        {
            "steady": ["pass"],
            "flaky": ["pass", "pass", "fail", "pass", "pass"],  # 4/5 meets 80 %
            "busy machine": ["pass", "inconclusive"],
        },
    )
    steady, flaky, busy = result.scenarios
    assert steady.status == "pass" and flaky.status == "pass"
    assert busy.status == "inconclusive"
    assert result.status == "inconclusive"
    flaky.runs[0] = run(1, None)  # a call that could not be placed is a failed repeat
    assert flaky.passed_runs == 3 and flaky.status == "fail" and result.status == "fail"


def test_junit_marks_failures_with_their_reason_and_inconclusive_as_skipped(tmp_path: Path) -> None:
    result = suite_result(
        tmp_path,
        {
            "steady": ["fail"],
            "flaky": ["pass"] * 5,
            "busy machine": ["inconclusive", "pass"],
        },
    )
    root = ET.fromstring(junit_xml(result).split("\n", 1)[1])
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("3", "1", "1")
    cases = {c.get("name"): c for c in root.iter("testcase")}
    failure = cases["steady"].find("failure")
    assert failure is not None
    assert "0/1 calls passed" in failure.get("message", "")
    assert "turn latency ≤ 800 ms: 910 ms" in failure.get("message", "")
    skipped = cases["busy machine"].find("skipped")
    assert skipped is not None and "inconclusive" in skipped.get("message", "")
    assert cases["flaky"].find("failure") is None and cases["flaky"].find("skipped") is None
    assert suite_json(result)["counts"] == {"pass": 1, "fail": 1, "inconclusive": 1}


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 50) == 10.0
    assert percentile(values, 95) == 19.0
    assert percentile([], 50) is None


def test_a_failed_call_whose_caller_fell_far_behind_is_inconclusive() -> None:
    from ivr_bridge.sim.twilio.session import StreamStats

    failed = run(1, "fail")
    assert failed.result is not None
    failed.result.stats = StreamStats(max_tick_lag_ms=3300.0)
    failed.result.speed = 4.0  # 825 ms of real time behind
    assert failed.status == "inconclusive" and "machine overloaded" in failed.reason()
    passed = run(2, "pass")
    assert passed.result is not None
    passed.result.stats = StreamStats(max_tick_lag_ms=3300.0)
    assert passed.status == "pass"
    failed.result.stats = StreamStats(max_tick_lag_ms=400.0)  # 100 ms real: a real failure
    assert failed.status == "fail"


def test_a_failed_call_whose_branch_waited_long_on_speech_to_text_is_inconclusive() -> None:
    failed = run(1, "fail")
    assert failed.result is not None
    failed.result.speed = 4.0
    failed.result.recorder.event(900.0, "branch", decided_in_ms=5_200.0, taken="else")
    assert failed.status == "fail"  # 1.3 s real: a person's pace, the agent is judged
    failed.result.recorder.event(9_000.0, "branch", decided_in_ms=24_000.0, taken="else")
    assert failed.status == "inconclusive"  # 6 s real: the tester's ears fell behind
    assert "speech-to-text kept a branch waiting 6000 ms" in failed.reason()
