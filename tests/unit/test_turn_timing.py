"""A turn's answer piece by piece, and which words end a turn early."""

from __future__ import annotations

from ivr_bridge.call.turn_timing import TurnTiming


def _timing() -> tuple[TurnTiming, list[dict[str, int]]]:
    reports: list[dict[str, int]] = []
    return TurnTiming(reports.append), reports


def test_a_spoken_turn_is_reported_once_at_its_first_frame_and_the_pieces_add_up() -> None:
    timing, reports = _timing()
    timing.caller_turn(1000, 1200)
    timing.words_known(1250)
    timing.text_sent(1300)
    timing.first_audio(1360)
    timing.released(1370)
    timing.released(1390)  # later frames of the same answer
    assert reports == [
        {
            "endpointing": 200,
            "recognition": 50,
            "reply": 50,
            "tts": 60,
            "release": 10,
            "total": 370,
        }
    ]
    phases = reports[0]
    assert sum(v for k, v in phases.items() if k != "total") == phases["total"]


def test_words_recognised_ahead_cost_no_recognition_time() -> None:
    timing, reports = _timing()
    timing.caller_turn(1000, 1200)
    timing.words_known(1100)  # the pause's result resolved before the utterance was delivered
    timing.text_sent(1210)
    timing.first_audio(1260)
    timing.released(1260)
    assert reports[0]["recognition"] == 0 and reports[0]["reply"] == 10


def test_a_key_has_no_endpointing_or_recognition() -> None:
    timing, reports = _timing()
    timing.caller_turn(500, 500, keys=True)
    timing.text_sent(520)
    timing.first_audio(600)
    timing.released(610)
    assert reports == [{"endpointing": 0, "reply": 20, "tts": 80, "release": 10, "total": 110}]


def test_audio_queued_before_the_turn_does_not_answer_it() -> None:
    timing, reports = _timing()
    timing.caller_turn(1000, 1600)
    timing.released(1610)  # the rest of a prompt that cannot be interrupted
    assert reports == []
    timing.text_sent(1700)
    timing.released(1800)
    assert reports[0]["total"] == 800


def test_a_new_turn_before_an_answer_starts_the_count_again() -> None:
    timing, reports = _timing()
    timing.caller_turn(1000, 1600)
    timing.caller_turn(3000, 3600)
    timing.text_sent(3700)
    timing.released(3750)
    assert [r["total"] for r in reports] == [750]
