"""When an LLM turn's words end as a sentence (the shorter end-of-turn wait) and when a pause is
mid-sentence (the full wait): the last word decides, as a caller's pauses would."""

from __future__ import annotations

import pytest

from ivr_bridge.dialog.turn_end import ends_as_sentence


@pytest.mark.parametrize(
    "text",
    [
        "I want to check my order.",
        "When will it arrive?",
        "Thank you very much.",
        "Billing!",
        "Cancel it.",
        "Thank you.",
        "Why?",
        "Is anyone there?",
    ],
)
def test_sentences_that_end_end_the_turn(text: str) -> None:
    assert ends_as_sentence(text)


@pytest.mark.parametrize(
    "text",
    [
        "I want to.",  # whisper closes fragments too: the last word decides
        "I'd like to speak to the.",
        "My number is 1-2-3.",  # numbers come in groups with pauses between
        "The number is one two three.",
        "Can I change my",
        "I was wondering if.",
        "Um.",
        "So...",
        "",
    ],
)
def test_fragments_keep_the_full_wait(text: str) -> None:
    assert not ends_as_sentence(text)
