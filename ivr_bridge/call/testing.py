"""A scripted fake of the call contract, shipped so any call app can be tested without a bridge.

Like httpx's ``MockTransport``: an app written against ``CallControl`` runs unchanged against
``ScriptedCall``, which plays the caller from a script and records what the app did. No audio,
no speech service, no sockets; call time moves the way it does on a real line.

- Inputs are a script: each ``next_input`` takes the next item; ``None`` in the script is the
  caller staying silent until the timeout (call time jumps by the whole timeout).
- ``interrupt={n: chars}``: the caller talks over utterance ``n`` (0-based) once ``chars``
  characters of it were heard; ``heard_text`` is then the whole words inside them, like the
  conductor's cut by word timestamps, and a streamed utterance stops pulling text there.
- ``hangup``/``transfer`` record the end and raise the real ``CallEnding``; anything the app
  does after that fails the test.

    call = ScriptedCall([digits("1")[0], None])
    with pytest.raises(CallEnding):
        await my_app.run(call)
    assert call.said == ["Welcome.", "Goodbye."]
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ivr_bridge.call.clock import CallClock
from ivr_bridge.call.control import BargeInPolicy, CallDetails, SayResult
from ivr_bridge.call.inputs import CallerInput, DtmfInput, SpeechInput
from ivr_bridge.call.lookahead import Ahead, AheadHandle, RecognizeAtEnd, T
from ivr_bridge.errors import CallEnding

MS_PER_CHAR = 60.0
"""How long a character of text takes to say (about 150 words a minute)."""
CALL_SID = "CA" + "1" * 32
STREAM_SID = "MZ" + "1" * 32


def digits(keys: str, *, start_ms: float = 0.0, gap_ms: float = 1.0) -> list[DtmfInput]:
    """Key presses, one ``gap_ms`` apart."""
    return [DtmfInput(k, start_ms + i * gap_ms) for i, k in enumerate(keys)]


def utterance(text: str, ms: float = 800.0, *, start_ms: float = 0.0) -> SpeechInput:
    """A caller utterance whose "audio" is its text, so a fake recogniser can "hear" it."""
    return SpeechInput(text.encode(), start_ms, start_ms + ms)


def heard_prefix(text: str, chars: int) -> str:
    """Whole words that fit in the first ``chars`` characters."""
    words: list[str] = []
    used = 0
    for word in text.split():
        used += len(word) + (1 if words else 0)
        if used > chars:
            break
        words.append(word)
    return " ".join(words)


@dataclass
class Spoken:
    """One thing the app said or played."""

    kind: Literal["say", "stream", "play"]
    text: str
    """The text (for ``play``: the label)."""
    policy: BargeInPolicy | None
    pieces: list[str] = field(default_factory=list)
    interrupted: bool = False
    heard: str = ""


class ScriptedCall:
    """Implements ``ivr_bridge.call.control.CallControl``."""

    def __init__(
        self,
        inputs: Iterable[CallerInput | None] = (),
        *,
        parameters: dict[str, str] | None = None,
        interrupt: dict[int, int] | None = None,
        call_sid: str = CALL_SID,
        drafts: bool = False,
    ) -> None:
        """``drafts``: each utterance is first recognised as at a pause just before it ends
        (``Ahead.on_draft``), as a real call listening ahead does when the caller stops."""
        self.drafts = drafts
        self.ahead: RecognizeAtEnd[Any] | None = None
        self.details = CallDetails(call_sid, STREAM_SID, dict(parameters or {}))
        self.clock = CallClock()
        self.inputs: deque[CallerInput | None] = deque(inputs)
        self.interrupt = dict(interrupt or {})
        self.spoken: list[Spoken] = []
        self.timeouts: list[float | None] = []
        self.events: list[dict[str, Any]] = []
        self.swallowed: list[tuple[str, float]] = []
        self.sensitive: list[str] = []
        """Values the app asked to mask in the call's log lines."""
        self.discards: list[bool] = []
        """One entry per ``discard_inputs`` call: whether keys were discarded too."""
        self.ended: tuple[str, str | None] | None = None
        """``("hangup", None)`` or ``("dial", number)`` once the app ended the call."""

    # --- what the app did ------------------------------------------------------------------

    @property
    def said(self) -> list[str]:
        """Texts spoken (``say`` and ``say_stream``), in order."""
        return [s.text for s in self.spoken if s.kind != "play"]

    @property
    def played(self) -> list[str]:
        return [s.text for s in self.spoken if s.kind == "play"]

    @property
    def policies(self) -> list[BargeInPolicy | None]:
        """The barge-in policy each ``say`` was given (None: the bridge default)."""
        return [s.policy for s in self.spoken if s.kind == "say"]

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind]

    # --- CallControl -------------------------------------------------------------------------

    async def say(self, text: str, *, barge_in: BargeInPolicy | None = None) -> SayResult:
        self._check_live()
        return self._settle(Spoken("say", text, barge_in, [text]))

    async def say_stream(
        self, chunks: AsyncIterator[str], *, barge_in: BargeInPolicy | None = None
    ) -> SayResult:
        self._check_live()
        spoken = Spoken("stream", "", barge_in)
        cut = self.interrupt.get(len(self.spoken))
        async for piece in chunks:
            spoken.pieces.append(piece)
            spoken.text += piece
            if cut is not None and len(spoken.text) > cut:
                break  # the caller barged in: stop pulling text, like the conductor
        if not spoken.text:
            return SayResult("", "", 0.0)
        return self._settle(spoken)

    async def play(
        self, ulaw: bytes, *, label: str, barge_in: BargeInPolicy | None = None
    ) -> SayResult:
        self._check_live()
        self.spoken.append(Spoken("play", label, barge_in, heard=label))
        return SayResult(label, label, len(ulaw) / 8)

    async def next_input(self, timeout_ms: float | None) -> CallerInput | None:
        self._check_live()
        self.timeouts.append(timeout_ms)
        item = self.inputs.popleft() if self.inputs else None
        ahead = self.ahead
        if self.drafts and isinstance(item, SpeechInput) and ahead and not ahead.stopped:
            await ahead.draft(item)
        # Call time moves like on a real line: to an input's own time, or by the whole timeout.
        if item is not None:
            at = item.end_ms if isinstance(item, SpeechInput) else item.at_ms
            self.clock.advance_to(at)
        elif timeout_ms is not None:
            self.clock.advance_to(self.clock.now_ms() + timeout_ms)
        return item

    def recognize_ahead(self, ahead: Ahead[T]) -> AheadHandle[T]:
        handle = RecognizeAtEnd(ahead)
        self.ahead = handle
        return handle

    def discard_inputs(self, *, keys: bool = True) -> None:
        self.discards.append(keys)  # the script holds future inputs, not queued ones

    def swallow_key(self, digit: str, within_ms: float) -> None:
        self.swallowed.append((digit, within_ms))

    def record_event(self, kind: str, **fields: Any) -> None:
        self.events.append({"kind": kind, **fields})

    def mark_sensitive(self, value: str) -> None:
        self.sensitive.append(value)

    async def transfer(self, number: str) -> None:
        self._check_live()
        self.ended = ("dial", number)
        raise CallEnding

    async def hangup(self) -> None:
        self._check_live()
        self.ended = ("hangup", None)
        raise CallEnding

    # --- inside ------------------------------------------------------------------------------

    def _settle(self, spoken: Spoken) -> SayResult:
        cut = self.interrupt.get(len(self.spoken))
        self.spoken.append(spoken)
        if cut is not None and cut < len(spoken.text):
            spoken.interrupted, spoken.heard = True, heard_prefix(spoken.text, cut)
            return SayResult(spoken.text, spoken.heard, cut * MS_PER_CHAR, True, "speech")
        spoken.heard = spoken.text
        return SayResult(spoken.text, spoken.text, len(spoken.text) * MS_PER_CHAR)

    def _check_live(self) -> None:
        if self.ended is not None:
            raise AssertionError(f"the app acted after the call ended ({self.ended[0]})")
