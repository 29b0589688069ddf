"""Turn-taking figures from the heard audio: yield, talk-over, dead air."""

from __future__ import annotations

from ivr_bridge.sim.scenario.audio_timing import dead_air, talk_overs, yields
from ivr_bridge.sim.scenario.recording import CallerTurn, CallRecorder, Utterance
from ivr_bridge.sim.scenario.result import check_expectations
from ivr_bridge.sim.scenario.script import Expectations
from ivr_bridge.sim.twilio.twiml import Verdict


def call() -> CallRecorder:
    """Bot 0.2-3.0 s, cut by the caller talking 1.0-1.8 s; bot again 2.1-3.0 s (starting while
    the caller still talks 2.0-2.4 s); silence to 7.0 s."""
    recorder = CallRecorder()
    recorder.utterances += [
        Utterance(200.0, 1150.0, interrupted=True),
        Utterance(2100.0, 3000.0),
    ]
    recorder.turns += [
        CallerTurn("say", "stop", 1000.0, 1800.0, barge_in=True),
        CallerTurn("say", "and also", 2000.0, 2400.0),
    ]
    recorder.event(1000.0, "barge_in")
    recorder.line_end_ms = 7000.0
    return recorder


def test_yield_is_onset_to_the_bots_audio_stopping() -> None:
    assert yields(call()) == [150.0]


def test_a_bot_whose_audio_stops_at_the_onset_yielded_at_once() -> None:
    recorder = call()
    recorder.events.clear()
    recorder.event(1150.0, "barge_in")
    assert yields(recorder) == [0.0]


def test_talk_over_is_a_bot_utterance_starting_inside_a_caller_turn() -> None:
    assert talk_overs(call()) == [300.0]


def test_dead_air_is_both_sides_silent() -> None:
    gaps = [(g.start_ms, g.end_ms) for g in dead_air(call())]
    assert gaps == [(1800.0, 2000.0), (3000.0, 7000.0)]


def test_the_limits_fail_with_where_and_how_much() -> None:
    expect = Expectations(max_yield_ms=100, max_talk_over_ms=0, max_dead_air_ms=3000)
    checks = {c.name: c for c in check_expectations(expect, Verdict("hangup"), call(), None)}
    assert checks["yield ≤ 100 ms"].status == "fail"
    assert checks["talk-over ≤ 0 ms"].status == "fail"
    dead = checks["dead air ≤ 3000 ms"]
    assert dead.status == "fail" and "4000 ms at 3.0 s" in dead.detail
    loose = Expectations(max_yield_ms=200, max_dead_air_ms=5000)
    assert all(c.passed for c in check_expectations(loose, Verdict("hangup"), call(), None))
