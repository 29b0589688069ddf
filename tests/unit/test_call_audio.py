"""The record's two channels: the bot's as the caller heard it, cleared audio never in it."""

from __future__ import annotations

from ivr_bridge.audio.codec import ULAW_SILENCE
from ivr_bridge.call.call_audio import CallAudio

FRAME = b"\x10" * 160  # 20 ms of (loud) µ-law


def test_frames_sent_together_play_back_to_back() -> None:
    audio = CallAudio(keep_audio=True)
    for _ in range(3):
        audio.on_bot_sent(0.0, 1, FRAME)
    assert len(audio.bot) == 3 * 160
    assert (audio.spans[1].start_ms, audio.spans[1].end_ms) == (0.0, 60.0)


def test_a_clear_cuts_what_had_not_played_and_nothing_of_it_is_in_the_recording() -> None:
    audio = CallAudio(keep_audio=True)
    for _ in range(5):  # 100 ms sent ahead
        audio.on_bot_sent(0.0, 1, FRAME)
    audio.on_clear(30.0)
    assert len(audio.bot) == 30 * 8
    assert audio.spans[1].end_ms == 30.0
    audio.on_bot_sent(100.0, 2, FRAME)  # the next utterance, after a pause
    assert bytes(audio.bot[240:800]) == ULAW_SILENCE * 560
    assert bytes(audio.bot[800:960]) == FRAME
    assert (audio.spans[2].start_ms, audio.spans[2].end_ms) == (100.0, 120.0)


def test_an_utterance_cleared_before_any_of_it_played_was_never_heard() -> None:
    audio = CallAudio(keep_audio=True)
    audio.on_bot_sent(0.0, 1, FRAME * 5)
    audio.on_bot_sent(0.0, 2, FRAME)  # queued behind the first: would start at 100 ms
    audio.on_clear(50.0)
    assert 2 not in audio.spans and audio.spans[1].end_ms == 50.0
    assert len(audio.bot) == 400


def test_a_clear_after_everything_played_changes_nothing() -> None:
    audio = CallAudio(keep_audio=True)
    audio.on_bot_sent(0.0, 1, FRAME)
    audio.on_clear(500.0)
    assert len(audio.bot) == 160 and audio.spans[1].end_ms == 20.0


def test_the_caller_is_placed_by_timestamp_with_silence_for_lost_frames() -> None:
    audio = CallAudio(keep_audio=True)
    audio.on_caller(0.0, FRAME)
    audio.on_caller(60.0, FRAME)  # two frames lost in between
    assert len(audio.caller) == 80 * 8
    assert bytes(audio.caller[160:480]) == ULAW_SILENCE * 320
    assert audio.duration_ms == 80.0


def test_metadata_only_keeps_spans_but_no_audio() -> None:
    audio = CallAudio(keep_audio=False)
    audio.on_caller(0.0, FRAME)
    audio.on_bot_sent(0.0, 1, FRAME)
    assert not audio.caller and not audio.bot
    assert audio.spans[1].end_ms == 20.0


def test_a_channel_stops_growing_at_its_limit() -> None:
    audio = CallAudio(keep_audio=True, max_ms=40)
    for at in (0.0, 20.0, 40.0):
        audio.on_caller(at, FRAME)
    assert len(audio.caller) == 320 and audio.truncated
