"""Mark bookkeeping: which audio Twilio has really played, and which was cleared.

Every outbound media chunk is followed by a mark named ``ivr.<generation>.<seq>``. Twilio echoes a
mark when the audio before it has played, *and* echoes every pending mark when we send ``clear``;
the two echoes are identical on the wire. So ``clear`` bumps the generation and moves the pending
marks to a cleared set: their echoes are recognised and never counted as played. A mark whose
audio finished just before ``clear`` arrived at Twilio is indistinguishable (±1 chunk).

Twilio echoes marks in order, so an echo also confirms every earlier pending mark of its
generation (robust against a lost echo).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

MARK_PREFIX = "ivr"


@dataclass(slots=True)
class SentChunk(Generic[T]):
    """One media chunk sent to Twilio and the mark that follows it."""

    mark: str
    generation: int
    n_bytes: int
    owner: T
    """What the audio belongs to (the utterance), so playback can credit played bytes to it."""
    expected_end: float
    """Wall-clock time by which it should have played, for the lost-echo fallback."""


class MarkLedger(Generic[T]):
    """Pure bookkeeping; no I/O, so it can be tested exhaustively."""

    def __init__(self) -> None:
        self.generation = 0
        self._seq = 0
        self._pending: deque[SentChunk[T]] = deque()
        self._cleared: set[str] = set()
        self.played_bytes = 0
        """Audio bytes Twilio has confirmed (or the fallback assumed) as played, all generations."""
        self.cleared_echoes = 0
        self.unknown_echoes = 0
        self.assumed_played = 0
        """Marks credited by the wall-clock fallback because no echo came."""

    def next_mark(self, n_bytes: int, owner: T, expected_end: float) -> SentChunk[T]:
        """Register a chunk about to be sent; returns it with the mark name to send after it."""
        self._seq += 1
        chunk = SentChunk(
            mark=f"{MARK_PREFIX}.{self.generation}.{self._seq}",
            generation=self.generation,
            n_bytes=n_bytes,
            owner=owner,
            expected_end=expected_end,
        )
        self._pending.append(chunk)
        return chunk

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def unplayed_bytes(self) -> int:
        """Bytes sent to Twilio and not yet confirmed played (Twilio's buffer, as we know it)."""
        return sum(c.n_bytes for c in self._pending)

    def oldest_deadline(self) -> float | None:
        return self._pending[0].expected_end if self._pending else None

    def on_echo(self, name: str) -> list[SentChunk[T]]:
        """A mark came back. Returns the chunks now known to be played (possibly none)."""
        if name in self._cleared:
            self._cleared.discard(name)
            self.cleared_echoes += 1
            return []
        if not any(c.mark == name for c in self._pending):
            self.unknown_echoes += 1
            return []
        played: list[SentChunk[T]] = []
        while self._pending:
            chunk = self._pending.popleft()
            played.append(chunk)
            self.played_bytes += chunk.n_bytes
            if chunk.mark == name:
                break
        return played

    def assume_played_until(self, now: float) -> list[SentChunk[T]]:
        """Wall-clock fallback: credit chunks whose deadline has passed without an echo."""
        played: list[SentChunk[T]] = []
        while self._pending and self._pending[0].expected_end <= now:
            chunk = self._pending.popleft()
            played.append(chunk)
            self.played_bytes += chunk.n_bytes
            self.assumed_played += 1
        return played

    def on_clear(self) -> list[SentChunk[T]]:
        """We sent ``clear``: pending chunks will never play; their echoes must not count."""
        cleared = list(self._pending)
        self._cleared.update(c.mark for c in cleared)
        self._pending.clear()
        self.generation += 1
        return cleared
