"""How a call's stream ended, kept until Twilio asks ``<Connect action>`` what to do next.

The socket and the after-stream webhook are separate requests (possibly to different replicas
later), so the outcome goes through a store keyed by CallSid. The in-memory store serves one
process; the interface is async so a Redis-backed store can replace it without touching callers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class CallOutcome:
    action: Literal["hangup", "dial", "apologise"]
    number: str | None = None
    """Transfer target for ``dial``."""
    message: str | None = None
    """For ``apologise``: said with Twilio's own voice when our speech path failed."""
    say_voice: str | None = None
    """For ``apologise``: Twilio ``<Say voice>``; None: Twilio's default."""
    say_language: str | None = None


HANGUP = CallOutcome("hangup")


class OutcomeStore(Protocol):
    async def record(self, call_sid: str, outcome: CallOutcome) -> None: ...

    async def take(self, call_sid: str) -> CallOutcome | None: ...

    async def outstanding(self, recent_s: float = 60.0) -> int:
        """Outcomes recorded in the last ``recent_s`` that Twilio has not asked for yet (a
        draining process waits for them before it exits; Twilio asks within seconds)."""
        ...


class MemoryOutcomeStore:
    """Outcomes for one process, expiring after ``ttl_s`` so abandoned calls do not pile up."""

    def __init__(self, ttl_s: float = 600.0, max_entries: int = 100_000) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._items: dict[str, tuple[float, CallOutcome]] = {}

    async def record(self, call_sid: str, outcome: CallOutcome) -> None:
        now = time.monotonic()
        self._expire(now)
        if len(self._items) >= self._max_entries:
            self._items.pop(next(iter(self._items)))
        self._items[call_sid] = (now + self._ttl_s, outcome)

    async def take(self, call_sid: str) -> CallOutcome | None:
        self._expire(time.monotonic())
        item = self._items.pop(call_sid, None)
        return item[1] if item else None

    async def outstanding(self, recent_s: float = 60.0) -> int:
        now = time.monotonic()
        self._expire(now)
        since = now + self._ttl_s - recent_s  # an entry expires at its record time + ttl
        return sum(1 for expires, _ in self._items.values() if expires >= since)

    def _expire(self, now: float) -> None:
        # Insertion order is expiry order (constant TTL), so stop at the first live entry.
        while self._items:
            sid, (expires, _) = next(iter(self._items.items()))
            if expires > now:
                break
            del self._items[sid]
