"""A scripted CallControl and recognisers for flow unit tests (no bridge, no audio)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ivr_bridge.call.clock import CallClock
from ivr_bridge.call.inputs import CallerInput, DtmfInput, SpeechInput
from ivr_bridge.dialog.control import BargeInPolicy, CallDetails, SayResult
from ivr_bridge.dialog.services import (
    FlowServices,
    GrammarChoice,
    Recognition,
    RecognizerUnavailable,
    Transcription,
)


class CallEnded(Exception):
    """Like the conductor's CallEnding: nothing runs after hangup/transfer."""


def digits(keys: str) -> list[DtmfInput]:
    return [DtmfInput(k, float(i)) for i, k in enumerate(keys)]


def speech(label: str, ms: int = 800) -> SpeechInput:
    """An utterance whose 'audio' is its label, so the fake recogniser can 'hear' it."""
    return SpeechInput(label.encode(), 0.0, float(ms))


class FakeCall:
    """Inputs are a script: each ``next_input`` takes the next item (``None`` = a timeout)."""

    def __init__(
        self, inputs: Iterable[CallerInput | None] = (), parameters: dict[str, str] | None = None
    ) -> None:
        self.details = CallDetails("CA" + "1" * 32, "MZ" + "1" * 32, dict(parameters or {}))
        self.clock = CallClock()
        self.inputs: deque[CallerInput | None] = deque(inputs)
        self.said: list[str] = []
        self.policies: list[BargeInPolicy | None] = []
        self.played: list[str] = []
        self.timeouts: list[float | None] = []
        self.events: list[dict[str, Any]] = []
        self.ended: tuple[str, str | None] | None = None

    async def say(self, text: str, *, barge_in: BargeInPolicy | None = None) -> SayResult:
        self._check_live()
        self.said.append(text)
        self.policies.append(barge_in)
        return SayResult(text=text, heard_text=text, played_ms=100.0)

    async def play(
        self, ulaw: bytes, *, label: str, barge_in: BargeInPolicy | None = None
    ) -> SayResult:
        self._check_live()
        self.played.append(label)
        return SayResult(text=label, heard_text=label, played_ms=len(ulaw) / 8)

    async def next_input(self, timeout_ms: float | None) -> CallerInput | None:
        self._check_live()
        self.timeouts.append(timeout_ms)
        item = self.inputs.popleft() if self.inputs else None
        # Call time moves like on a real line: to an input's own time, or by the whole timeout.
        if item is not None:
            self.clock.on_media(int(_input_at_ms(item)))
        elif timeout_ms is not None:
            self.clock.on_media(int(self.clock.now_ms() + timeout_ms))
        return item

    def discard_inputs(self) -> None:
        pass  # the script holds future inputs, not queued ones

    def record_event(self, kind: str, **fields: Any) -> None:
        self.events.append({"kind": kind, **fields})

    async def transfer(self, number: str) -> None:
        self.ended = ("dial", number)
        raise CallEnded

    async def hangup(self) -> None:
        self.ended = ("hangup", None)
        raise CallEnded

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind]

    def _check_live(self) -> None:
        assert self.ended is None, "the flow kept going after the call ended"


def _input_at_ms(item: CallerInput) -> float:
    return item.end_ms if isinstance(item, SpeechInput) else item.at_ms


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

    async def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcription:
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
