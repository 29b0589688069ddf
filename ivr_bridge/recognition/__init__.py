"""Embedded speech recognition: pocketsphinx grammars and faster-whisper transcription.

Both engines run on their own bounded executors, never on the event loop, and load lazily, so a
flow that never listens never pays for a model.
"""

from __future__ import annotations

from ivr_bridge.recognition.grammar import build_jsgf, yes_no_choices
from ivr_bridge.recognition.models import (
    GrammarChoice,
    GrammarError,
    Recognition,
    RecognizerUnavailable,
    Transcription,
)
from ivr_bridge.recognition.sphinx import GrammarRecognizer, get_grammar_recognizer
from ivr_bridge.recognition.text import normalize_phrase, spoken_digits
from ivr_bridge.recognition.whisper import Transcriber, get_transcriber

__all__ = [
    "GrammarChoice",
    "GrammarError",
    "GrammarRecognizer",
    "Recognition",
    "RecognizerUnavailable",
    "Transcriber",
    "Transcription",
    "build_jsgf",
    "get_grammar_recognizer",
    "get_transcriber",
    "normalize_phrase",
    "spoken_digits",
    "yes_no_choices",
]
