"""What a running flow needs from outside the call: recognisers and the environment.

Held in one small object so unit tests inject a fake recogniser and the server the real ones
(``ivr_bridge.recognition``: pocketsphinx grammars, faster-whisper transcription). The real
recognisers are looked up lazily, on first use, so a flow with no speech never loads a model.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ivr_bridge.recognition.models import (
    GrammarChoice,
    Recognition,
    RecognizerUnavailable,
    Transcription,
)

if TYPE_CHECKING:
    from ivr_bridge.llm.provider import LLMProvider
    from ivr_bridge.llm.settings import LLMSettings


class GrammarRecognizer(Protocol):
    async def recognize(
        self, pcm16: bytes, sample_rate: int, choices: Sequence[GrammarChoice]
    ) -> Recognition: ...


class Transcriber(Protocol):
    async def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcription: ...


def _real_grammar_recognizer() -> GrammarRecognizer:
    from ivr_bridge.recognition import get_menu_recognizer  # loads pocketsphinx on demand

    recognizer: GrammarRecognizer = get_menu_recognizer()
    return recognizer


def _real_transcriber() -> Transcriber:
    from ivr_bridge.recognition import get_transcriber  # raises RecognizerUnavailable

    transcriber: Transcriber = get_transcriber()
    return transcriber


def _env_llm_settings() -> LLMSettings:
    from ivr_bridge.llm.settings import load_llm_settings  # raises ConfigError naming IVR_LLM_*

    return load_llm_settings()


def _real_llm_provider(settings: LLMSettings) -> LLMProvider:
    from ivr_bridge.llm.factory import make_provider

    return make_provider(settings)


class LiveTranscriber(Protocol):
    """A recogniser that hears the whole call as it streams (Deepgram live, ``stt``)."""

    def feed(self, at_ms: float, ulaw: bytes) -> None: ...

    async def transcript(self, start_ms: float, end_ms: float) -> Transcription: ...

    def speech_final_at(self, end_ms: float) -> bool: ...

    async def close(self) -> None: ...


def _real_live_transcriber() -> LiveTranscriber | None:
    from ivr_bridge.stt import live_transcriber  # Deepgram configured: one stream per call

    factory = live_transcriber()
    return factory() if factory is not None else None


def _real_turn_transcriber() -> Transcriber:
    from ivr_bridge.stt import get_turn_transcriber  # whisper embedded, Deepgram with a key

    transcriber: Transcriber = get_turn_transcriber()
    return transcriber


@dataclass
class FlowServices:
    grammar: Callable[[], GrammarRecognizer] = _real_grammar_recognizer
    """Returns the grammar recogniser; may raise ``RecognizerUnavailable``."""
    transcriber: Callable[[], Transcriber] = _real_transcriber
    """Returns the free-form transcriber; may raise ``RecognizerUnavailable``."""
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    """Read (per call) for the ``env`` variables a flow declares."""
    http_max_bytes: int = 1 << 20
    """Largest HTTP response body a flow step reads."""
    llm_settings: Callable[[], LLMSettings] = _env_llm_settings
    """``IVR_LLM_*`` for an ``llm`` step; raises ``ConfigError`` naming the bad variable."""
    llm_provider: Callable[[LLMSettings], LLMProvider] = _real_llm_provider
    """Builds the model client for one ``llm`` step (closed when the step ends)."""
    turn_transcriber: Callable[[], Transcriber] = _real_turn_transcriber
    """Transcribes caller turns in an ``llm`` step (``IVR_STT``); may raise
    ``RecognizerUnavailable``."""
    live_transcriber: Callable[[], LiveTranscriber | None] = _real_live_transcriber
    """A live stream for one ``llm`` step's caller turns (Deepgram: one WebSocket for the whole
    dialog, its own endpointing, ``IVR_STT``), or None to transcribe each utterance with
    ``turn_transcriber`` (whisper)."""


__all__ = [
    "FlowServices",
    "GrammarChoice",
    "GrammarRecognizer",
    "LiveTranscriber",
    "Recognition",
    "RecognizerUnavailable",
    "Transcriber",
    "Transcription",
]
