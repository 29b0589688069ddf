"""What the caller sent and heard, on the call-time axis: events, stereo audio, turns, utterances.

The heard channel is written by the playout clock (one frame per 20 ms tick), never on receipt,
so audio the server cleared before it played never appears in it. Sample ``i`` of both channels is
call time ``i / 8`` ms, which makes the WAV line up with every timestamp in the transcript.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr_bridge.audio.codec import ULAW_BYTES_PER_MS, rms_pcm16, ulaw_to_pcm16
from ivr_bridge.sim.twilio.tap import VOICED_RMS


@dataclass(slots=True)
class Utterance:
    """Consecutive bot audio the caller heard."""

    start_ms: float
    end_ms: float
    interrupted: bool = False
    """Ended by a ``clear``."""
    text: str | None = None
    """What a transcriber heard in it (None when no transcriber ran)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "duration_ms": self.end_ms - self.start_ms,
            "interrupted": self.interrupted,
            "text": self.text,
        }


@dataclass(slots=True)
class CallerTurn:
    kind: str
    """``say`` | ``play`` | ``press``."""
    detail: str
    start_ms: float
    end_ms: float | None = None
    barge_in: bool = False
    latency_ms: float | None = None
    """Caller end of turn → first bot audio heard after it (None: the bot did not answer)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "detail": self.detail,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "barge_in": self.barge_in,
            "latency_ms": self.latency_ms,
        }


class CallRecorder:
    """Collects the timeline of one simulated call."""

    def __init__(self, utterance_gap_ms: float = 500.0) -> None:
        self.utterance_gap_ms = utterance_gap_ms
        self.events: list[dict[str, Any]] = []
        self.utterances: list[Utterance] = []
        self.turns: list[CallerTurn] = []
        self.caller_audio = bytearray()
        """µ-law, sample i = call time i/8 ms."""
        self.heard_audio = bytearray()
        self._current: Utterance | None = None
        self.line_end_ms = 0.0
        """End of the last frame recorded."""
        self.last_voiced_end_ms: float | None = None
        """End of the last frame in which bot speech was heard."""

    def event(self, t_ms: float, name: str, /, **fields: Any) -> dict[str, Any]:
        entry = {"t_ms": round(t_ms, 1), "event": name, **fields}
        self.events.append(entry)
        return entry

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind]

    def frame(self, t_ms: float, caller_ulaw: bytes, heard_ulaw: bytes, bot_bytes: int) -> bool:
        """One 20 ms tick starting at ``t_ms``: what the caller sent and what it heard; True
        when the bot was heard speaking (the one voicing test per frame)."""
        start = int(t_ms * ULAW_BYTES_PER_MS)
        for channel in (self.caller_audio, self.heard_audio):
            if len(channel) < start:
                channel.extend(b"\xff" * (start - len(channel)))
        self.caller_audio[start : start + len(caller_ulaw)] = caller_ulaw
        self.heard_audio[start : start + len(heard_ulaw)] = heard_ulaw
        frame_ms = len(heard_ulaw) / ULAW_BYTES_PER_MS
        self.line_end_ms = t_ms + frame_ms
        voiced = bot_bytes > 0 and rms_pcm16(ulaw_to_pcm16(heard_ulaw[:bot_bytes])) >= VOICED_RMS
        if not voiced:
            return False
        self.last_voiced_end_ms = t_ms + frame_ms
        current = self._current
        if current is not None and t_ms - current.end_ms <= self.utterance_gap_ms:
            current.end_ms = t_ms + frame_ms
        else:
            self._current = Utterance(start_ms=t_ms, end_ms=t_ms + frame_ms)
            self.utterances.append(self._current)
        return True

    def cleared(self) -> None:
        """A ``clear`` ends the bot utterance being heard, as interrupted."""
        if self._current is not None:
            self._current.interrupted = True
            self._current = None

    @property
    def audible_utterance(self) -> Utterance | None:
        """The utterance the caller is hearing right now (bot speech in the last frame)."""
        current = self._current
        if current is not None and current.end_ms >= self.line_end_ms:
            return current
        return None

    def begin_turn(self, kind: str, detail: str, t_ms: float, *, barge_in: bool) -> CallerTurn:
        turn = CallerTurn(kind=kind, detail=detail, start_ms=t_ms, barge_in=barge_in)
        self.turns.append(turn)
        self.event(t_ms, "caller_turn_start", kind=kind, detail=detail, barge_in=barge_in)
        return turn

    def end_turn(self, turn: CallerTurn, t_ms: float) -> None:
        turn.end_ms = t_ms
        self.event(t_ms, "caller_turn_end", kind=turn.kind, detail=turn.detail)

    def finish(self) -> None:
        """Compute per-turn latencies and add utterances to the event timeline."""
        for index, turn in enumerate(self.turns):
            if turn.end_ms is None:
                continue
            next_start = self.turns[index + 1].start_ms if index + 1 < len(self.turns) else None
            answer = next((u for u in self.utterances if u.start_ms >= turn.end_ms), None)
            if answer is not None and (next_start is None or answer.start_ms < next_start):
                turn.latency_ms = round(answer.start_ms - turn.end_ms, 1)
        for utterance in self.utterances:
            self.event(utterance.start_ms, "bot_utterance_start")
            self.event(
                utterance.end_ms,
                "bot_utterance_end",
                duration_ms=utterance.end_ms - utterance.start_ms,
                interrupted=utterance.interrupted,
                text=utterance.text,
            )
        self.events.sort(key=lambda e: e["t_ms"])

    def heard_pcm16(self, start_ms: float, end_ms: float) -> bytes:
        """The heard channel between two call times, as 8 kHz PCM (for transcription)."""
        a, b = int(start_ms * ULAW_BYTES_PER_MS), int(end_ms * ULAW_BYTES_PER_MS)
        return ulaw_to_pcm16(bytes(self.heard_audio[a:b]))

    def channels(self) -> tuple[bytes, bytes]:
        """µ-law of the caller and of what it heard, padded with silence to one length."""
        length = max(len(self.caller_audio), len(self.heard_audio))
        return (
            bytes(self.caller_audio.ljust(length, b"\xff")),
            bytes(self.heard_audio.ljust(length, b"\xff")),
        )

    def write_wav(self, path: Path) -> None:
        """Stereo 16-bit 8 kHz: left = caller, right = what the caller heard."""
        caller, heard = self.channels()
        left, right = ulaw_to_pcm16(caller), ulaw_to_pcm16(heard)
        interleaved = bytearray(len(left) * 2)
        for i in range(2):
            interleaved[i::4] = left[i::2]
            interleaved[2 + i :: 4] = right[i::2]
        with wave.open(str(path), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(bytes(interleaved))
