"""Which engine speaks a request: the catalogue voice decides, and the language can overrule.

espeak-ng voices speak every language espeak knows; the neural ``heart`` voice speaks English
only, so a ``heart`` session asked for Spanish is spoken by espeak (in Spanish, with the
voice's fallback variant) instead of failing or reading Spanish with English sounds. Sessions and
REST handlers hold one :class:`VoiceEngines` and never choose themselves.
"""

from __future__ import annotations

from typing import Protocol

from ivr_bridge.speechserver.neural import NeuralSynthesizer
from ivr_bridge.speechserver.synth import EspeakSynthesizer, Synthesis, get_synthesizer
from ivr_bridge.speechserver.voices import get_voice

_ENGLISH = ("", "auto", "en")


class Synthesizer(Protocol):
    """Text to PCM with word timings; what sessions and REST handlers call."""

    async def synthesize(
        self,
        text: str,
        voice: str,
        sample_rate: int,
        speed: float = 1.0,
        language: str | None = None,
    ) -> Synthesis: ...


def speaks_neural(voice: str, language: str | None) -> bool:
    """True when the neural engine speaks ``voice`` in ``language``."""
    profile = get_voice(voice)
    lang = (language or "").strip().lower().split("-")[0]
    return profile is not None and profile.engine == "hibari" and lang in _ENGLISH


class VoiceEngines:
    """Routes each request to espeak or the neural voice (both one thread per process)."""

    def __init__(
        self, espeak: EspeakSynthesizer | None = None, neural: NeuralSynthesizer | None = None
    ) -> None:
        self.espeak = espeak if espeak is not None else get_synthesizer()
        self.neural = neural if neural is not None else get_neural_synthesizer()

    async def synthesize(
        self,
        text: str,
        voice: str,
        sample_rate: int,
        speed: float = 1.0,
        language: str | None = None,
    ) -> Synthesis:
        if speaks_neural(voice, language):
            return await self.neural.synthesize(text, voice, sample_rate, speed, language)
        return await self.espeak.synthesize(text, voice, sample_rate, speed, language)


_neural: NeuralSynthesizer | None = None


def get_neural_synthesizer() -> NeuralSynthesizer:
    """The process-wide neural synthesizer (one model in memory, loaded on first use)."""
    global _neural
    if _neural is None:
        _neural = NeuralSynthesizer()
    return _neural
