"""What a live Deepgram stream has said, on the call clock, and whose turn each word is.

Pure bookkeeping for ``stt.deepgram_live`` (no socket, no task): its ``Results`` messages become
``Final`` results in call milliseconds (``Epoch`` maps a connection's seconds of audio to call
time); ``LiveWords`` keeps them and answers the dialog's questions: how far the finals reach,
the words of one caller turn (each word, by its mid-time, belongs to exactly one turn, so a final
result that straddles two utterances is split between them, never lost or given to both), and
whether Deepgram itself called an utterance over (``speech_final`` or ``UtteranceEnd``).
``Replay`` keeps the audio sent but not yet finalised, to send again after a reconnect.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

BYTES_PER_MS = 8
"""8 kHz µ-law mono: 8 bytes per millisecond."""
COVER_SLACK_MS = 20.0
"""Final results that end within one frame of a time cover it (Deepgram's float seconds)."""
LEAD_MS = 300.0
"""Words this long before a turn's start still belong to it (VAD starts after the onset)."""
TRAIL_MS = 250.0
"""Words this long after a turn's end still belong to it (VAD may cut a word's tail)."""
MAX_TURNS = 32
"""Turns remembered (a turn asked again, after a pause, is the same turn). Finals that end
before the oldest of them are let go, so a long call keeps a bounded number of results."""
MAX_UTTERANCE_ENDS = 64


@dataclass(frozen=True, slots=True)
class Word:
    start_ms: float
    end_ms: float
    text: str

    @property
    def mid_ms(self) -> float:
        return (self.start_ms + self.end_ms) / 2


@dataclass(frozen=True, slots=True)
class Final:
    """One ``is_final`` result, on the call clock."""

    start_ms: float
    end_ms: float
    transcript: str
    confidence: float
    speech_final: bool
    from_finalize: bool
    words: tuple[Word, ...]


@dataclass(slots=True)
class Epoch:
    """One connection's clock: byte ``n`` sent on it is call ms ``origin_ms + n / 8``."""

    origin_ms: float | None = None
    sent_bytes: int = 0
    finalize_sent_ms: float = float("-inf")

    @property
    def end_ms(self) -> float | None:
        if self.origin_ms is None:
            return None
        return self.origin_ms + self.sent_bytes / BYTES_PER_MS

    def call_ms(self, seconds: float) -> float:
        assert self.origin_ms is not None
        return self.origin_ms + seconds * 1000.0


def parse_results(message: dict[str, Any], epoch: Epoch) -> tuple[Final | None, str, float]:
    """A ``Results`` message: its final (None for an interim one), its transcript and the call
    ms it reaches."""
    alternatives = (message.get("channel") or {}).get("alternatives") or [{}]
    best = alternatives[0] or {}
    transcript = str(best.get("transcript") or "").strip()
    start_ms = epoch.call_ms(float(message.get("start") or 0.0))
    end_ms = start_ms + float(message.get("duration") or 0.0) * 1000.0
    if not message.get("is_final"):
        return None, transcript, end_ms
    words = tuple(
        Word(
            epoch.call_ms(float(w.get("start") or 0.0)),
            epoch.call_ms(float(w.get("end") or 0.0)),
            str(w.get("punctuated_word") or w.get("word") or ""),
        )
        for w in best.get("words") or []
    )
    if transcript and not words:  # no word times: the result's span stands for its words
        words = (Word(start_ms, end_ms, transcript),)
    final = Final(
        start_ms,
        end_ms,
        transcript,
        float(best.get("confidence") or 0.0),
        bool(message.get("speech_final")),
        bool(message.get("from_finalize")),
        words,
    )
    return final, transcript, end_ms


@dataclass(slots=True)
class _Turn:
    lo_ms: float
    hi_ms: float


class LiveWords:
    def __init__(self) -> None:
        self._finals: list[Final] = []
        self.final_until_ms: float | None = None
        """How far (call ms) the final results reach."""
        self._utterance_ends: deque[float] = deque(maxlen=MAX_UTTERANCE_ENDS)
        self._turns: dict[float, _Turn] = {}

    def add(self, final: Final) -> bool:
        """Keep a final result; True when it reaches further than any before."""
        self._finals.append(final)
        if self.final_until_ms is None or final.end_ms > self.final_until_ms:
            self.final_until_ms = final.end_ms
            return True
        return False

    @property
    def kept(self) -> int:
        """Final results held (bounded: see ``MAX_TURNS``)."""
        return len(self._finals)

    def utterance_end(self, last_word_end_ms: float) -> None:
        self._utterance_ends.append(last_word_end_ms)

    def covered(self, target_ms: float) -> bool:
        """The finals reach ``target_ms``: a turn ending there has all its words."""
        reached = self.final_until_ms
        return reached is not None and reached >= target_ms - COVER_SLACK_MS

    def speech_final_at(self, end_ms: float) -> bool:
        """Deepgram says the utterance ended: the last final result with words before
        ``end_ms`` was ``speech_final`` (its endpointing), or an ``UtteranceEnd`` followed it."""
        last: Final | None = None
        for final in self._finals:
            if final.words and final.words[0].start_ms < end_ms:
                if last is None or final.end_ms >= last.end_ms:
                    last = final
        if last is None:
            return False
        if last.speech_final:
            return True
        last_word_end = last.words[-1].end_ms
        return any(u >= last_word_end - COVER_SLACK_MS for u in self._utterance_ends)

    def collect(self, start_ms: float, end_ms: float) -> tuple[str, float]:
        """The words of the caller's turn from ``start_ms`` (call ms) and their confidence;
        asking again with the same start (a longer utterance after a pause) is the same turn."""
        turn = next((t for s, t in self._turns.items() if abs(s - start_ms) < 1.0), None)
        if turn is None:
            lo = start_ms - LEAD_MS
            earlier = [t.hi_ms for s, t in self._turns.items() if s < start_ms]
            if earlier:
                lo = max(lo, max(earlier))  # what an earlier turn did not claim is this turn's
            turn = _Turn(lo, lo)
            self._turns[start_ms] = turn
            if len(self._turns) > MAX_TURNS:
                while len(self._turns) > MAX_TURNS:
                    self._turns.pop(next(iter(self._turns)))
                oldest = min(t.lo_ms for t in self._turns.values())
                self._finals = [f for f in self._finals if f.end_ms >= oldest]
        hi = end_ms + TRAIL_MS
        later = [t.lo_ms for s, t in self._turns.items() if s > start_ms]
        if later:
            hi = min(hi, min(later))
        turn.hi_ms = max(turn.hi_ms, hi)
        pieces: list[str] = []
        confidences: list[float] = []
        for final in sorted(self._finals, key=lambda f: f.start_ms):
            inside = [w for w in final.words if turn.lo_ms <= w.mid_ms < turn.hi_ms]
            if not inside:
                continue
            whole = len(inside) == len(final.words) and final.transcript
            pieces.append(final.transcript if whole else " ".join(w.text for w in inside))
            confidences.append(final.confidence)
        text = " ".join(p for p in pieces if p).strip()
        return text, min(confidences, default=0.0)


@dataclass(slots=True)
class Replay:
    chunks: deque[tuple[float, bytes]] = field(default_factory=deque)
    """Sent audio Deepgram has not finalised yet (call ms of the first byte, the bytes)."""

    def add(self, start_ms: float, data: bytes, keep_ms: float) -> None:
        self.chunks.append((start_ms, data))
        end_ms = start_ms + len(data) / BYTES_PER_MS
        while self.chunks and _chunk_end(self.chunks[0]) < end_ms - keep_ms:
            self.chunks.popleft()

    def finalised_until(self, until_ms: float) -> None:
        while self.chunks and _chunk_end(self.chunks[0]) <= until_ms:
            self.chunks.popleft()

    def take(self, from_ms: float | None) -> list[tuple[float, bytes]]:
        """The unfinalised audio, trimmed to start exactly at ``from_ms``; the buffer empties."""
        out: list[tuple[float, bytes]] = []
        for start_ms, data in self.chunks:
            if from_ms is not None and start_ms < from_ms:
                skip = round((from_ms - start_ms) * BYTES_PER_MS)
                if skip >= len(data):
                    continue
                start_ms, data = start_ms + skip / BYTES_PER_MS, data[skip:]
            out.append((start_ms, data))
        self.chunks.clear()
        return out


def _chunk_end(chunk: tuple[float, bytes]) -> float:
    return chunk[0] + len(chunk[1]) / BYTES_PER_MS
