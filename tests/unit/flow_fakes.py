"""Recognisers and services for flow unit tests; the call itself is ``ivr_bridge.call.testing``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ivr_bridge.dialog.services import (
    FlowServices,
    GrammarChoice,
    Recognition,
    RecognizerUnavailable,
    Transcription,
)


@dataclass
class FakeGrammar:
    """'Recognises' an utterance as its label: a choice id, or words matched to phrases."""

    confidence: float = 0.9
    calls: list[tuple[int, tuple[GrammarChoice, ...]]] = field(default_factory=list)

    async def recognize(
        self, pcm16: bytes, sample_rate: int, choices: Sequence[GrammarChoice]
    ) -> Recognition:
        self.calls.append((sample_rate, tuple(choices)))
        text = pcm16.decode()
        choice = next((c.id for c in choices if text in c.phrases), None)
        return Recognition(text, choice, self.confidence, "fake-grammar", 12.0)


@dataclass
class FakeTranscriber:
    heard: list[bytes] = field(default_factory=list)

    async def transcribe(
        self, pcm16: bytes, sample_rate: int, *, hint: str | None = None
    ) -> Transcription:
        self.heard.append(pcm16)
        return Transcription(pcm16.decode().replace("|", " "), 0.8, "fake-whisper", 30.0)


def unavailable() -> Any:
    raise RecognizerUnavailable("not installed here")


def services(
    grammar: FakeGrammar | None = None,
    transcriber: FakeTranscriber | None = None,
    environ: dict[str, str] | None = None,
) -> FlowServices:
    g, t = grammar or FakeGrammar(), transcriber or FakeTranscriber()
    return FlowServices(grammar=lambda: g, transcriber=lambda: t, environ=environ or {})
