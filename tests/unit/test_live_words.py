"""A live stream's words on the call clock: each word to one caller turn, never lost or doubled."""

from __future__ import annotations

from ivr_bridge.stt.live_words import MAX_TURNS, Epoch, LiveWords, Replay, parse_results


def _results(start_s: float, words: list[tuple[str, float, float]], **flags: bool) -> dict:
    return {
        "type": "Results",
        "start": start_s,
        "duration": words[-1][2] - start_s if words else 0.5,
        "is_final": flags.get("is_final", True),
        "speech_final": flags.get("speech_final", False),
        "channel": {
            "alternatives": [
                {
                    "transcript": " ".join(w for w, _, _ in words),
                    "confidence": 0.9,
                    "words": [{"word": w, "start": a, "end": b} for w, a, b in words],
                }
            ]
        },
    }


def _heard(*messages: dict, origin_ms: float = 1000.0) -> LiveWords:
    epoch = Epoch(origin_ms=origin_ms)
    words = LiveWords()
    for message in messages:
        final, _, _ = parse_results(message, epoch)
        assert final is not None
        words.add(final)
    return words


def test_times_are_call_ms_from_the_connections_origin() -> None:
    final, text, end_ms = parse_results(_results(0.5, [("yes", 0.5, 0.9)]), Epoch(origin_ms=2000))
    assert final is not None and text == "yes"
    assert (final.words[0].start_ms, final.words[0].end_ms, end_ms) == (2500, 2900, 2900)


def test_an_interim_result_is_no_final() -> None:
    final, text, _ = parse_results(
        _results(0, [("hel", 0, 0.2)], is_final=False), Epoch(origin_ms=0)
    )
    assert final is None and text == "hel"


def test_a_final_straddling_two_turns_is_split_by_each_words_middle() -> None:
    words = _heard(_results(0, [("balance", 0.1, 0.6), ("savings", 1.6, 2.1)]))
    # Two turns: 1000-1700 and 2500-3200 call ms.
    assert words.collect(1000, 1700)[0] == "balance"
    assert words.collect(2500, 3200)[0] == "savings"
    assert words.collect(1000, 1700)[0] == "balance"  # asked again: the same turn, same words


def test_finals_cover_a_turn_only_once_they_reach_its_end() -> None:
    words = _heard(_results(0, [("hello", 0.1, 0.5)]))
    assert words.final_until_ms == 1500
    assert words.covered(1510) and not words.covered(1600)


def test_deepgrams_own_end_of_utterance_is_its_speech_final_or_an_utterance_end() -> None:
    words = _heard(_results(0, [("yes", 0.1, 0.4)], speech_final=True))
    assert words.speech_final_at(1500)
    later = _heard(_results(0, [("well", 0.1, 0.4)]))
    assert not later.speech_final_at(1500)
    later.utterance_end(1400)
    assert later.speech_final_at(1500)


def test_replay_keeps_only_the_audio_not_yet_finalised() -> None:
    replay = Replay()
    for n in range(5):
        replay.add(n * 200.0, b"\x01" * 1600, keep_ms=10_000)
    replay.finalised_until(400)
    chunks = replay.take(500)
    assert chunks[0][0] == 500 and len(chunks[0][1]) == 800  # trimmed to start at 500
    assert sum(len(c) for _, c in chunks) == 8 * 500 and replay.take(None) == []


def test_a_long_call_keeps_a_bounded_number_of_results_and_its_recent_words() -> None:
    epoch = Epoch(origin_ms=0)
    words = LiveWords()
    for n in range(200):  # 200 turns, two finals each (a Finalize at a pause, then the rest)
        start_s = n * 2.0
        for word, a, b in (
            (f"w{n}a", start_s, start_s + 0.3),
            (f"w{n}b", start_s + 0.5, start_s + 0.8),
        ):
            final, _, _ = parse_results(_results(a, [(word, a, b)]), epoch)
            assert final is not None
            words.add(final)
        assert words.collect(start_s * 1000, (start_s + 0.9) * 1000)[0] == f"w{n}a w{n}b"
    assert words.kept <= 2 * (MAX_TURNS + 1)
