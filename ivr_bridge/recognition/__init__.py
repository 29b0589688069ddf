"""Embedded speech recognition: pocketsphinx grammars and faster-whisper transcription.

Both engines run on their own bounded executors, never on the event loop, and load lazily, so a
flow that never listens never pays for a model.
"""

from __future__ import annotations

from ivr_bridge.recognition.grammar import build_jsgf, yes_no_choices
from ivr_bridge.recognition.hybrid import HybridGrammarRecognizer
from ivr_bridge.recognition.models import (
    GrammarChoice,
    GrammarError,
    Recognition,
    RecognizerUnavailable,
    Transcription,
)
from ivr_bridge.recognition.sphinx import GrammarRecognizer, get_grammar_recognizer
from ivr_bridge.recognition.text import normalize_phrase, spoken_digits
from ivr_bridge.recognition.warmup import warm_up_recognizers
from ivr_bridge.recognition.whisper import Transcriber, get_transcriber


def get_menu_recognizer() -> HybridGrammarRecognizer:
    """What flows use for spoken menu choices: the grammar, checked by whisper when unsure."""
    return HybridGrammarRecognizer(get_grammar_recognizer(), get_transcriber)


__all__ = [
    "GrammarChoice",
    "GrammarError",
    "GrammarRecognizer",
    "HybridGrammarRecognizer",
    "Recognition",
    "RecognizerUnavailable",
    "Transcriber",
    "Transcription",
    "build_jsgf",
    "get_grammar_recognizer",
    "get_menu_recognizer",
    "get_transcriber",
    "normalize_phrase",
    "spoken_digits",
    "warm_up_recognizers",
    "yes_no_choices",
]
