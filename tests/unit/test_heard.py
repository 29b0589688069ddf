"""What the caller heard of an interrupted prompt, from played audio and word timestamps."""

from __future__ import annotations

from ivr_bridge.call.heard import heard_text, heard_words
from ivr_bridge.speech.session import WordTiming

WORDS = [
    WordTiming("For", 0.05, 0.15),
    WordTiming("billing", 0.20, 0.40),
    WordTiming("press", 0.70, 0.30),
    WordTiming("one", 1.00, 0.30),
]
TEXT = "For billing, press one."


def test_a_word_counts_once_half_of_it_played() -> None:
    assert heard_words(WORDS, 0) == []
    assert heard_words(WORDS, 390) == ["For"]
    assert heard_words(WORDS, 400) == ["For", "billing"]
    assert heard_words(WORDS, 10_000) == ["For", "billing", "press", "one"]


def test_interrupted_prompt_reports_only_the_heard_words() -> None:
    assert heard_text(TEXT, WORDS, 860, 1400, interrupted=True) == "For billing press"


def test_a_prompt_played_in_full_is_heard_verbatim() -> None:
    assert heard_text(TEXT, WORDS, 1400, 1400, interrupted=False) == TEXT


def test_without_timestamps_the_share_played_estimates_the_words() -> None:
    assert heard_text("one two three four", [], 500, 1000, interrupted=True) == "one two"
    assert heard_text("one two three four", [], 500, None, interrupted=True) == ""
