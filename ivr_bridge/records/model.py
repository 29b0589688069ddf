"""The call record: one JSON document per call, the contract every consumer reads.

Stores keep it, the end-of-call webhook sends it, ``ivr-bridge calls`` and the operators' pages
show it. It is built once, when the call ends, from the call's own timeline (its events on the
call clock) and the two recorded channels, and it is already masked: digits a flow marked
sensitive, keys pressed in a sensitive gather and phone numbers never reach a record in the
clear, so nothing downstream has to remember to mask. Times inside a call are call-clock
milliseconds (0 = the stream's first audio), the same clock as the stereo WAV.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RECORD_VERSION = 1

Outcome = Literal["completed", "transferred", "caller_hung_up", "failed"]
"""How the call ended, for people and metric labels: the bot finished (hung up), handed the
caller to a number, the caller left first, or the call apologised / broke."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class BotUtterance(_Model):
    """One thing the bot said, with what the caller heard of it apart from the rest."""

    id: int
    start_ms: float | None = None
    """When its first audio reached the caller's ear (call ms); None: none of it was heard."""
    end_ms: float | None = None
    text: str
    """Everything the bot meant to say."""
    heard: str
    """The words the caller heard (all of ``text`` unless interrupted)."""
    unheard: str = ""
    """The words cut off by a barge-in (never played to the caller)."""
    interrupted: bool = False
    interrupted_by: Literal["speech", "dtmf", "hangup"] | None = None
    """What cut it: the caller's speech or keys, or the call ending (a hang-up) mid-way."""
    played_ms: float = 0.0


class CallerTurn(_Model):
    """One turn of the caller's: an utterance (cut by the VAD) or keys pressed together."""

    kind: Literal["speech", "dtmf"]
    start_ms: float
    end_ms: float
    text: str | None = None
    """Recognised words, or the keys pressed; masked when the flow marked them sensitive."""
    confidence: float | None = None
    engine: str | None = None
    stt_ms: float | None = None
    """Recognition time of this turn (speech only)."""
    barge_in: bool = False
    """It interrupted the bot."""
    latency_ms: float | None = None
    """End of the turn → the next bot audio the caller heard; None: the bot did not answer."""
    phases_ms: dict[str, int] | None = None
    """The bridge's own account of its answer (``call.turn_timing``, call ms): endpointing,
    recognition, reply, tts, release and total (voice end → first audio sent)."""


class BargeIn(_Model):
    at_ms: float
    """The caller's onset (call ms)."""
    utterance: int
    by: str
    onset_to_clear_ms: float | None = None
    heard: str = ""
    """What the caller had heard of the utterance when it stopped."""


class RecordAudio(_Model):
    """The stereo recording: left the caller, right the bot as the caller heard it."""

    file: str
    """File name inside the store's directory (``<CallSid>.wav``)."""
    duration_ms: float
    sample_rate: int = 8000
    bytes: int = 0


class CallRecord(_Model):
    version: int = RECORD_VERSION
    call_sid: str
    stream_sid: str = ""
    app: str = ""
    """The call app that ran (``flow``, ``reminder``, ...)."""
    flow: str | None = None
    """The flow's name, for a flow call."""
    parameters: dict[str, str] = Field(default_factory=dict)
    """The stream's custom parameters (phone numbers keep their last four digits)."""
    started_at: datetime
    """When the stream started (UTC)."""
    ended_at: datetime
    duration_ms: float
    outcome: Outcome
    ending: Literal["bridge", "caller", "error"] = "bridge"
    """Who closed the stream."""
    transfer_to: str | None = None
    """For ``transferred``: the number (last four digits shown)."""
    utterances: list[BotUtterance] = Field(default_factory=list)
    turns: list[CallerTurn] = Field(default_factory=list)
    barge_ins: list[BargeIn] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    """What went wrong, in words (a flow error, a speech outage, an LLM failure)."""
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    """Over ``turns``: end of the caller's turn → the bot's next audio heard."""
    audio: RecordAudio | None = None
    events: list[dict[str, Any]] = Field(default_factory=list)
    """The call's timeline as recorded (``kind``, ``call_ms`` and the event's fields), masked."""

    @property
    def idempotency_key(self) -> str:
        """The same call's record always carries the same key (a webhook receiver dedupes)."""
        return f"{self.call_sid}:{self.version}"

    def summary(self) -> dict[str, Any]:
        """The one line a listing shows (and the per-call log line carries)."""
        return {
            "call_sid": self.call_sid,
            "flow": self.flow or self.app,
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "duration_s": round(self.duration_ms / 1000, 1),
            "outcome": self.outcome,
            "turns": len(self.turns),
            "barge_ins": len(self.barge_ins),
            "p95_latency_ms": None if self.latency_p95_ms is None else round(self.latency_p95_ms),
            "errors": len(self.errors),
            "audio": self.audio is not None,
        }


class RecordSummary(_Model):
    """A record as a list shows it (what ``RecordStore.list`` returns)."""

    call_sid: str
    flow: str | None
    started_at: datetime
    duration_ms: float
    outcome: Outcome
    turns: int
    barge_ins: int
    errors: int
    has_audio: bool

    @classmethod
    def of(cls, record: CallRecord) -> RecordSummary:
        return cls(
            call_sid=record.call_sid,
            flow=record.flow or record.app or None,
            started_at=record.started_at,
            duration_ms=record.duration_ms,
            outcome=record.outcome,
            turns=len(record.turns),
            barge_ins=len(record.barge_ins),
            errors=len(record.errors),
            has_audio=record.audio is not None,
        )
