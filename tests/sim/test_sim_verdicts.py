"""How the simulator judges timing: pass, fail, or inconclusive when its own clock cannot vouch."""

from __future__ import annotations

from ivr_bridge.sim.scenario.conclusive import until_conclusive
from ivr_bridge.sim.scenario.recording import CallRecorder
from ivr_bridge.sim.scenario.result import (
    REAL_TIME_FLOOR_MS,
    CallResult,
    check_expectations,
    timing_slack_ms,
)
from ivr_bridge.sim.scenario.script import parse_script
from ivr_bridge.sim.twilio.session import StreamStats
from ivr_bridge.sim.twilio.twiml import Verdict

SCRIPT = parse_script("steps: []\nexpect:\n  ended: hangup\n  clear_after_barge_in_ms: 200\n")


def _recorder(clear_after_ms: float) -> CallRecorder:
    recorder = CallRecorder()
    recorder.event(1000, "barge_in", into_utterance_ms=500, bot_audible=True)
    recorder.event(1000 + clear_after_ms, "clear", dropped_ms=1000, echoed=[])
    return recorder


def _result(clear_after_ms: float, *, lag_ms: float, speed: float) -> CallResult:
    stats = StreamStats(max_tick_lag_ms=lag_ms)
    recorder = _recorder(clear_after_ms)
    verdict = Verdict("hangup")
    checks = check_expectations(
        SCRIPT.expect, verdict, recorder, stats, slack_ms=timing_slack_ms(stats, speed)
    )
    return CallResult("CA1", "MZ1", verdict, recorder, stats, speed, checks)


def test_a_limit_met_passes_whatever_the_lag() -> None:
    assert _result(180, lag_ms=900, speed=20).status == "pass"


def test_a_limit_missed_by_less_than_the_slack_is_inconclusive_never_a_failure() -> None:
    slack = 30 + REAL_TIME_FLOOR_MS * 4
    result = _result(200 + slack - 1, lag_ms=30, speed=4)
    assert result.status == "inconclusive" and not result.passed
    assert "cannot vouch" in result.expectations[1].detail
    assert "INCONCLUSIVE" in result.summary_table()
    assert result.transcript()["status"] == "inconclusive"


def test_a_limit_missed_by_more_than_the_slack_fails() -> None:
    slack = 30 + REAL_TIME_FLOOR_MS * 4
    assert _result(200 + slack + 1, lag_ms=30, speed=4).status == "fail"


def test_real_time_floor_scales_with_speed_and_lag_adds_to_it() -> None:
    assert timing_slack_ms(StreamStats(max_tick_lag_ms=0), 1) == REAL_TIME_FLOOR_MS
    assert timing_slack_ms(StreamStats(max_tick_lag_ms=100), 20) == 100 + 20 * REAL_TIME_FLOOR_MS


async def test_an_inconclusive_run_is_repeated_slower_until_it_can_be_judged() -> None:
    speeds: list[float] = []

    async def run(speed: float) -> CallResult:
        speeds.append(speed)
        # At 20x the machine was too busy; at 5x the same delay is a clear pass.
        return (
            _result(200 + 40 * speed, lag_ms=0, speed=speed)
            if speed > 5
            else _result(150, lag_ms=0, speed=speed)
        )

    result = await until_conclusive(run, 20)
    assert speeds == [20, 5] and result.status == "pass"


async def test_a_failure_is_not_repeated() -> None:
    speeds: list[float] = []

    async def run(speed: float) -> CallResult:
        speeds.append(speed)
        return _result(5000, lag_ms=0, speed=speed)

    assert (await until_conclusive(run, 20)).status == "fail"
    assert speeds == [20]


def test_the_keypad_path_is_the_keys_pressed_in_order() -> None:
    expect = parse_script('steps: []\nexpect:\n  keys: "14#"\n').expect
    recorder = CallRecorder()
    for t, digit in ((1000, "1"), (3000, "4"), (3200, "#")):
        recorder.event(t, "digit", digit=digit)
    [keys, _] = check_expectations(expect, Verdict("hangup"), recorder, None)
    assert keys.status == "pass" and keys.detail == "pressed 14#"
    recorder.event(4000, "digit", digit="9")  # a branch that went another way
    [keys, _] = check_expectations(expect, Verdict("hangup"), recorder, None)
    assert keys.status == "fail" and keys.detail == "pressed 14#9"
    none = parse_script('steps: []\nexpect:\n  keys: ""\n').expect
    [keys, _] = check_expectations(none, Verdict("hangup"), CallRecorder(), None)
    assert keys.status == "pass" and keys.name == "keys: (none)"
