"""What a dialog (scripted flow or LLM) may ask of the call: the conductor's public API.

Dialogs depend on this protocol only, so they can be tested against a scripted fake and the
conductor stays the one place that owns turn-taking.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ivr_bridge.call.clock import CallClock
from ivr_bridge.call.inputs import CallerInput

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

    def discard_inputs(self) -> None:
        """Forget inputs that arrived before now (e.g. before a menu is offered)."""
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
