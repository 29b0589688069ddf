"""The call contract: what a dialog (a flow, the LLM dialog, any call app) may ask of the call.

It lives with the call, below every dialog: the conductor implements it, dialogs program against
it and nothing else, so they run unchanged against the scripted fake in
``ivr_bridge.call.testing`` and the conductor stays the one place that owns turn-taking.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ivr_bridge.call.clock import CallClock
from ivr_bridge.call.inputs import CallerInput
from ivr_bridge.call.lookahead import Ahead, AheadHandle, T

BargeInMode = Literal["any", "speech", "dtmf", "none"]


@dataclass(frozen=True, slots=True)
class BargeInPolicy:
    """Who may interrupt a prompt: ``any`` (speech or a key), ``speech``, ``dtmf`` or ``none``
    (legal text is heard in full). ``ignore_first_ms`` protects a prompt's opening words."""

    mode: BargeInMode = "any"
    ignore_first_ms: int = 0


@dataclass(frozen=True, slots=True)
class SayResult:
    text: str
    heard_text: str
    """The words the caller actually heard (all of ``text`` unless interrupted)."""
    played_ms: float
    interrupted: bool = False
    interrupted_by: Literal["speech", "dtmf"] | None = None


@dataclass(frozen=True, slots=True)
class CallDetails:
    call_sid: str
    stream_sid: str
    parameters: dict[str, str] = field(default_factory=dict)
    """``start.customParameters``: flow name, From, To, and anything an outbound call carried."""


class CallControl(Protocol):
    details: CallDetails
    clock: CallClock

    async def say(self, text: str, *, barge_in: BargeInPolicy | None = None) -> SayResult:
        """Speak and wait until it was heard in full or interrupted."""
        ...

    async def say_stream(
        self, chunks: AsyncIterator[str], *, barge_in: BargeInPolicy | None = None
    ) -> SayResult:
        """Speak text as it arrives (a model's reply), as ONE utterance.

        - Each piece goes to the speech session as soon as it is yielded; the speech service
          buffers until it has enough context, so no sentence splitting is needed here.
        - The utterance is interruptible (per ``barge_in``) from its first piece on.
        - When ``chunks`` ends: flush once, return after the final mark echoed.
        - On barge-in: stop pulling from ``chunks`` (so the producer can be cancelled), reset
          the speech session as for ``say``, return ``interrupted=True`` with ``heard_text``.
        - ``SayResult.text`` is everything sent; when ``chunks`` yields nothing, return at once
          with empty text and nothing spoken. ``chunks`` must not raise.
        """
        ...

    async def play(
        self, ulaw: bytes, *, label: str, barge_in: BargeInPolicy | None = None
    ) -> SayResult:
        """Play recorded 8 kHz µ-law audio (a WAV step) through the same playback path."""
        ...

    async def next_input(self, timeout_ms: float | None) -> CallerInput | None:
        """The caller's next input; ``None`` after ``timeout_ms`` of call time.

        Inputs: a digit, an utterance, ``SpeechStarted`` at a voice onset, and
        ``SpeechAbandoned`` when that onset turned out to be noise (no utterance follows)."""
        ...

    def recognize_ahead(self, ahead: Ahead[T]) -> AheadHandle[T]:
        """Recognise the caller's words at each pause from now on, and end an utterance
        early when ``ahead.verdict`` says its words end the turn (``call.lookahead``).
        Replaces any earlier ``ahead``; ``AheadHandle.stop`` ends it. A delivered utterance's
        recognition: ``handle.result(speech)`` (no second run when a pause heard it all)."""
        ...

    def discard_inputs(self, *, keys: bool = True) -> None:
        """Forget inputs that arrived before now (e.g. before a recording starts);
        ``keys=False`` keeps keys typed ahead (a menu drops old speech, never the keys).

        Inputs not discarded wait for the next listening step: keys typed ahead answer the next
        menu, and a prompt they may interrupt is then not spoken at all."""
        ...

    def swallow_key(self, digit: str, within_ms: float) -> None:
        """The caller's next press of ``digit`` within ``within_ms`` is the finish key of an
        entry that already ended (it reached its maximum length): it neither interrupts a
        prompt nor reaches the dialog."""
        ...

    def mark_sensitive(self, value: str) -> None:
        """From now on, ``value`` (and any run of three or more of its digits) is masked in
        this call's log lines: a PIN, an account number, a balance read back."""
        ...

    def record_event(self, kind: str, **fields: Any) -> None:
        """Add to the call's event log (and the structured log)."""
        ...

    async def transfer(self, number: str) -> None:
        """End the stream with a ``<Dial>`` to ``number`` (after what was said has played)."""
        ...

    async def hangup(self) -> None:
        """End the call once everything said so far has been heard."""
        ...
