"""What the caller does, as the dialog sees it: digits and utterances, on the call clock.

Also what is learned about the caller from outside the line (``AnsweredBy``: an answering-machine
detection result), delivered in the same queue so a dialog waiting for the caller hears of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

AnsweredByValue = Literal[
    "human",
    "machine_start",
    "machine_end_beep",
    "machine_end_silence",
    "machine_end_other",
    "fax",
    "unknown",
]
"""Twilio's ``AnsweredBy`` values (answering-machine detection)."""
ANSWERED_BY: frozenset[str] = frozenset(get_args(AnsweredByValue))


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
    """End of the audio handed over (it keeps some of the trailing silence)."""
    speech_end_ms: float | None = None
    """When the caller's voice stopped (``end_ms`` minus the kept trailing silence); None when
    the source does not know, then ``end_ms`` stands in (``voice_end_ms``)."""

    @property
    def voice_end_ms(self) -> float:
        """When the caller stopped talking, as well as known: the wait for an answer starts here."""
        return self.end_ms if self.speech_end_ms is None else self.speech_end_ms


@dataclass(frozen=True, slots=True)
class AnsweredBy:
    """Who answered, as answering-machine detection decided (Twilio's ``AnsweredBy`` values:
    ``human``, ``machine_start``, ``machine_end_beep``, ``machine_end_silence``,
    ``machine_end_other``, ``fax``, ``unknown``). Dialogs that do not care may ignore it."""

    answered_by: str
    at_ms: float

    @property
    def machine(self) -> bool:
        return self.answered_by.startswith("machine") or self.answered_by == "fax"


CallerInput = DtmfInput | SpeechStarted | SpeechAbandoned | SpeechInput | AnsweredBy
