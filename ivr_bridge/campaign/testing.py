"""A dialer for tests and dry runs: it places nothing and remembers every request.

``ScriptedDialer`` answers each ``dial`` from a function of the request (default: a new
CallSid), stamps it with the clock it was given, and can pretend to crash after Twilio accepted
a call (``crash_after_placing``), the one failure a dispatcher cannot see from the inside.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ivr_bridge.campaign.dialer import Dialed, DialRequest, DialResult, PlacedCall


class DispatcherCrashed(BaseException):
    """Raised by ``ScriptedDialer`` in place of a process dying mid-dial."""


@dataclass
class ScriptedDialer:
    answer: Callable[[DialRequest], DialResult] | None = None
    clock: Callable[[], float] = time.time
    crash_after_placing: set[int] = field(default_factory=set)
    """Attempt ids whose call is placed, then the "process" dies before learning the CallSid."""
    requests: list[tuple[float, DialRequest]] = field(default_factory=list)
    placed: dict[str, PlacedCall] = field(default_factory=dict)
    _sids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def dial(self, request: DialRequest) -> DialResult:
        now = self.clock()
        self.requests.append((now, request))
        result = self.answer(request) if self.answer else Dialed(f"CA{next(self._sids):032x}")
        if isinstance(result, Dialed):
            self.placed[result.call_sid] = PlacedCall(
                result.call_sid, request.to, request.from_, now, "queued", None, None
            )
            if request.attempt_id in self.crash_after_placing:
                self.crash_after_placing.discard(request.attempt_id)
                raise DispatcherCrashed(request.attempt_id)
        return result

    async def find_calls(self, to: str, from_: str, *, since: float) -> list[PlacedCall]:
        return [
            c
            for c in self.placed.values()
            if c.to == to and c.from_ == from_ and c.created_at >= since
        ]

    async def fetch(self, call_sid: str) -> PlacedCall | None:
        return self.placed.get(call_sid)

    async def close(self) -> None:
        return None
