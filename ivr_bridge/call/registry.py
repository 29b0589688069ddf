"""Live calls by CallSid, so an event from outside a call's socket reaches the call.

A call's WebSocket is one request; an answering-machine result, an operator's "transfer now" or
a campaign's "hang up" arrive as others (and, with several replicas, at another process). The
registry maps CallSid → the running call behind a small async interface: ``MemoryCallRegistry``
serves one process; a Redis-backed one (pub/sub per CallSid) can replace it without touching
the calls or the routes that post events.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class HangUpNow:
    """End the call at once: what is playing stops, ``say`` (if any) is heard in full, then
    the call hangs up (a deploy's "we have to end this call now")."""

    reason: str = "operator"
    say: str | None = None


@dataclass(frozen=True, slots=True)
class TransferNow:
    """Transfer the call at once to ``number`` (E.164 or a sip: URI)."""

    number: str
    reason: str = "operator"


@dataclass(frozen=True, slots=True)
class MachineDetected:
    """An answering-machine detection result for the call (handed to its dialog)."""

    answered_by: str


CallEvent = HangUpNow | TransferNow | MachineDetected


class LiveCall(Protocol):
    def on_event(self, event: CallEvent) -> None:
        """Act on an out-of-band event; must not block (it runs in the poster's request)."""
        ...


class CallRegistry(Protocol):
    async def register(self, call_sid: str, call: LiveCall) -> None: ...

    async def unregister(self, call_sid: str, call: LiveCall) -> None:
        """Forget the call (only if ``call`` is still the one registered under the sid)."""
        ...

    async def deliver(self, call_sid: str, event: CallEvent, *, hold_s: float = 0.0) -> bool:
        """Hand ``event`` to the live call; False when no call with that sid is live.

        ``hold_s`` > 0: a call not live yet gets the event when it registers within that
        time (an answering-machine verdict can beat the call's own stream to the bridge)."""
        ...


HELD_EVENTS_MAX = 1000
"""Events held for calls not live yet, at most (the oldest go first)."""


class MemoryCallRegistry:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._calls: dict[str, LiveCall] = {}
        self._held: dict[str, list[tuple[float, CallEvent]]] = {}
        self._clock = clock

    def __len__(self) -> int:
        return len(self._calls)

    async def register(self, call_sid: str, call: LiveCall) -> None:
        self._calls[call_sid] = call
        now = self._clock()
        for expires, event in self._held.pop(call_sid, []):
            if expires >= now:
                call.on_event(event)

    async def unregister(self, call_sid: str, call: LiveCall) -> None:
        if self._calls.get(call_sid) is call:
            del self._calls[call_sid]

    async def deliver(self, call_sid: str, event: CallEvent, *, hold_s: float = 0.0) -> bool:
        call = self._calls.get(call_sid)
        if call is None:
            if hold_s > 0:
                self._hold(call_sid, event, hold_s)
            return False
        call.on_event(event)
        return True

    def _hold(self, call_sid: str, event: CallEvent, hold_s: float) -> None:
        now = self._clock()
        for sid in [s for s, held in self._held.items() if held[-1][0] < now]:
            del self._held[sid]
        while len(self._held) >= HELD_EVENTS_MAX:
            del self._held[next(iter(self._held))]
        self._held.setdefault(call_sid, []).append((now + hold_s, event))
