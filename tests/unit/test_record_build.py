"""A finished call's record from its events: heard apart from unheard, turns, masking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ivr_bridge.call.call_audio import CallAudio
from ivr_bridge.call.control import CallDetails
from ivr_bridge.call.event_log import CallEventLog
from ivr_bridge.records.build import CallEnd, build_record

FRAME = b"\x10" * 160
STARTED = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.ms = 0.0

    def now_ms(self) -> float:
        return self.ms


def _call() -> tuple[Any, CallEventLog, CallAudio]:
    clock = Clock()
    log = CallEventLog(clock)  # type: ignore[arg-type]
    audio = CallAudio(keep_audio=False)

    def at(ms: float) -> None:
        clock.ms = ms

    # 0-1000: the welcome, heard in full.
    audio.on_bot_sent(0, 1, FRAME * 50)
    at(1000)
    log.record("bot_says", utterance=1, text="Welcome.", full_text="Welcome.", unheard="")
    # 1000-: the menu; the caller talks over it at 1500 and it is cleared at 1700.
    audio.on_bot_sent(1000, 2, FRAME * 200)
    at(1700)
    audio.on_clear(1700)
    log.record("barge_in", utterance=2, by="speech", onset_ms=1500, heard_text="For your balance")
    log.record(
        "bot_says",
        utterance=2,
        text="For your balance",
        full_text="For your balance press 1 or say balance.",
        unheard="press 1 or say balance.",
        interrupted=True,
        by="speech",
        played_ms=700,
    )
    at(2100)
    log.record("caller_speech", start_ms=1500, end_ms=2100)
    log.record("recognition", text="balance", confidence=0.9, engine="grammar", elapsed_ms=40)
    # 2400: the account-number prompt, heard from 2400 to 3400.
    audio.on_bot_sent(2400, 3, FRAME * 50)
    at(2400)
    log.record(
        "turn_timing",
        endpointing_ms=200,
        recognition_ms=0,
        reply_ms=40,
        tts_ms=50,
        release_ms=10,
        total_ms=300,
    )
    at(3400)
    log.record(
        "bot_says", utterance=3, text="Your account number?", full_text="Your account number?"
    )
    for n, key in enumerate("1234#"):
        at(4000 + 300 * n)
        log.record("dtmf", digit=key, at_ms=4000 + 300 * n)
    log.mark_sensitive("1234")
    log.mark_sensitive("240.82")
    # 5500: the balance, which the flow marked sensitive.
    audio.on_bot_sent(5500, 4, FRAME * 50)
    at(5500)
    log.record(
        "turn_timing", endpointing_ms=0, reply_ms=230, tts_ms=40, release_ms=30, total_ms=300
    )
    at(6500)
    said = "Your balance is 240.82 on the account ending 1234."
    log.record("bot_says", utterance=4, text=said, full_text=said)
    log.record("end", action="hangup")
    return CallDetails("CA1", "MZ1", {"From": "+15551234567"}), log, audio


def _record() -> Any:
    details, log, audio = _call()
    end = CallEnd("bridge", STARTED, STARTED + timedelta(seconds=7), "flow")
    return build_record(details, log, audio, end)


def test_heard_and_unheard_words_are_kept_apart() -> None:
    record = _record()
    menu = record.utterances[1]
    assert (menu.heard, menu.unheard, menu.interrupted) == (
        "For your balance",
        "press 1 or say balance.",
        True,
    )
    assert (menu.start_ms, menu.end_ms) == (1000, 1700)  # audible until the clear
    assert [b.utterance for b in record.barge_ins] == [2] and record.barge_ins[0].at_ms == 1500


def test_caller_turns_carry_their_words_keys_and_latency() -> None:
    speech, keys = _record().turns
    assert (speech.kind, speech.text, speech.engine, speech.stt_ms) == (
        "speech",
        "balance",
        "grammar",
        40,
    )
    assert speech.barge_in and speech.latency_ms == 300  # 2100 → the prompt heard at 2400
    assert (keys.kind, keys.text, keys.start_ms, keys.end_ms) == ("dtmf", "••••#", 4000, 5200)
    assert keys.latency_ms == 300  # 5200 → 5500


def test_sensitive_values_never_reach_the_record() -> None:
    record = _record()
    dumped = record.model_dump_json()
    assert "1234" not in dumped and "240.82" not in dumped
    assert record.utterances[3].heard == "Your balance is •••••• on the account ending ••••."
    assert record.parameters == {"From": "••••••••4567"}


def test_the_outcome_and_latency_figures() -> None:
    record = _record()
    assert (record.outcome, record.ending, record.flow) == ("completed", "bridge", None)
    assert (record.latency_p50_ms, record.latency_p95_ms) == (300, 300)
    assert record.duration_ms == 6500 and record.summary()["turns"] == 2


def test_each_answered_turn_carries_the_bridges_breakdown_of_its_answer() -> None:
    speech, keys = _record().turns
    assert speech.phases_ms == {
        "endpointing": 200,
        "recognition": 0,
        "reply": 40,
        "tts": 50,
        "release": 10,
        "total": 300,
    }
    assert keys.kind == "dtmf" and keys.phases_ms is not None
    assert "recognition" not in keys.phases_ms and keys.phases_ms["total"] == 300
