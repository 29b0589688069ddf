"""What the caller does, as the dialog sees it: digits and utterances, on the call clock."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DtmfInput:
    digit: str
    at_ms: float


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """VAD saw the caller start talking (not yet an utterance: it may be noise)."""

    at_ms: float


@dataclass(frozen=True, slots=True)
class SpeechAbandoned:
    """The onset after a ``SpeechStarted`` was noise (a cough, a door): no utterance follows,
    so a dialog waiting for one goes back to its no-input deadline."""

    at_ms: float


@dataclass(frozen=True, slots=True)
class SpeechInput:
    """One caller utterance, cut by VAD endpointing: 8 kHz 16-bit mono PCM."""

    pcm16: bytes
    start_ms: float
    end_ms: float


CallerInput = DtmfInput | SpeechStarted | SpeechAbandoned | SpeechInput
