"""A faithful fake of the conductor for LLM dialog tests: CallControl plus ``say_stream``.

It records every utterance exactly as the speech session would receive it (the streamed pieces
and the joined text), and can play the caller barging in once a given number of characters has
been *heard*: the heard text is then the whole words inside that many characters, like the
conductor's word-timestamp cut. Inputs are a script; an empty script is a no-input timeout.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from ivr_bridge.call.clock import CallClock
from ivr_bridge.call.inputs import CallerInput, SpeechInput
from ivr_bridge.dialog.control import BargeInPolicy, CallDetails, SayResult
from ivr_bridge.recognition.models import Transcription


class CallEnded(Exception):
    """Like the conductor's CallEnding: nothing runs after hangup/transfer."""


def utterance(text: str, ms: int = 900) -> SpeechInput:
    """A caller utterance whose 'audio' is its text, so ``EchoTranscriber`` can 'hear' it."""
    return SpeechInput(text.encode(), 0.0, float(ms))


class EchoTranscriber:
    engine = "echo"

    async def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcription:
        assert sample_rate == 8000
        return Transcription(pcm16.decode(), 0.95, self.engine, 1.0)


@dataclass
class Utterance:
    text: str
    pieces: list[str] = field(default_factory=list)
    streamed: bool = False
    interrupted: bool = False
    heard: str = ""


def heard_prefix(text: str, chars: int) -> str:
    """Whole words that fit in the first ``chars`` characters."""
    words, used = [], 0
    for word in text.split():
        used += len(word) + (1 if words else 0)
        if used > chars:
            break
        words.append(word)
    return " ".join(words)


class FakeLlmCall:
    def __init__(
        self,
        inputs: Iterable[CallerInput | None] = (),
        *,
        interrupt: dict[int, int] | None = None,
    ) -> None:
        self.details = CallDetails("CA" + "1" * 32, "MZ" + "1" * 32, {"From": "+15550001111"})
        self.clock = CallClock()
        self.inputs: deque[CallerInput | None] = deque(inputs)
        self.interrupt = dict(interrupt or {})
        """utterance number (0-based) → characters heard before the caller cuts in."""
        self.utterances: list[Utterance] = []
        self.events: list[dict[str, Any]] = []
        self.ended: tuple[str, str | None] | None = None
        self.unconsumed_after_barge_in = 0
        self.timeouts: list[float | None] = []

    @property
    def said(self) -> list[str]:
        return [u.text for u in self.utterances]

    def _result(self, u: Utterance) -> SayResult:
        cut = self.interrupt.get(len(self.utterances) - 1)
        if cut is not None and cut < len(u.text):
            u.interrupted, u.heard = True, heard_prefix(u.text, cut)
            return SayResult(u.text, u.heard, cut * 60.0, True, "speech")
        u.heard = u.text
        return SayResult(u.text, u.text, len(u.text) * 60.0)

    async def say(self, text: str, *, barge_in: BargeInPolicy | None = None) -> SayResult:
        self._check_live()
        u = Utterance(text, [text])
        self.utterances.append(u)
        return self._result(u)

    async def say_stream(
        self, chunks: AsyncIterator[str], *, barge_in: BargeInPolicy | None = None
    ) -> SayResult:
        self._check_live()
        u = Utterance("", streamed=True)
        index = len(self.utterances)
        cut = self.interrupt.get(index)
        async for piece in chunks:
            u.pieces.append(piece)
            u.text += piece
            if cut is not None and len(u.text) > cut:
                break  # the caller barged in: stop pulling text, like the conductor
        if not u.text:
            return SayResult("", "", 0.0)
        self.utterances.append(u)
        return self._result(u)

    async def play(
        self, ulaw: bytes, *, label: str, barge_in: BargeInPolicy | None = None
    ) -> SayResult:
        return await self.say(label, barge_in=barge_in)

    async def next_input(self, timeout_ms: float | None) -> CallerInput | None:
        self._check_live()
        self.timeouts.append(timeout_ms)
        item = self.inputs.popleft() if self.inputs else None
        # Call time moves like on a real line: to an input's own time, or by the whole timeout.
        if item is not None:
            at = item.end_ms if isinstance(item, SpeechInput) else item.at_ms
            self.clock.on_media(int(at))
        elif timeout_ms is not None:
            self.clock.on_media(int(self.clock.now_ms() + timeout_ms))
        return item

    def discard_inputs(self) -> None:
        pass

    def record_event(self, kind: str, **fields: Any) -> None:
        self.events.append({"kind": kind, **fields})

    async def transfer(self, number: str) -> None:
        self.ended = ("dial", number)
        raise CallEnded

    async def hangup(self) -> None:
        self.ended = ("hangup", None)
        raise CallEnded

    def _check_live(self) -> None:
        assert self.ended is None, "the dialog acted after the call ended"
