"""What the recognisers take and return: plain frozen values, no engine types leak out.

Kept apart from the engines so the dialog layer (and its tests) can build and inspect them
without importing pocketsphinx or faster-whisper.
"""

from __future__ import annotations

from dataclasses import dataclass

from ivr_bridge.errors import RecognitionError


@dataclass(frozen=True, slots=True)
class GrammarChoice:
    """One option a gather step expects: its id and the phrases (synonyms) that select it."""

    id: str
    phrases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Recognition:
    """A grammar recognition result; ``choice`` is None when nothing in the grammar matched."""

    text: str
    """What the decoder heard (normalised words, fillers included); empty for silence."""
    choice: str | None
    confidence: float
    """0..1; see ``GrammarRecognizer`` for what the number means."""
    engine: str
    elapsed_ms: float
    """Wall-clock time spent decoding (excluding time queued for the executor)."""
    reason: str = ""
    """Why ``choice`` is None, in words a flow author reads in the debug log ("no menu
    option's words in it"); empty when an option was matched."""


@dataclass(frozen=True, slots=True)
class Transcription:
    """A free-form transcription of one utterance."""

    text: str
    confidence: float
    """0..1: the geometric-mean token probability reported by the model."""
    engine: str
    elapsed_ms: float


class RecognizerUnavailable(RecognitionError):
    """The recogniser cannot run here; the message says what to install or set."""


class GrammarError(RecognitionError, ValueError):
    """A grammar cannot be built: no phrases, or words the recogniser cannot pronounce."""
