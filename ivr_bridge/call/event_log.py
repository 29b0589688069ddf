"""The call's own timeline: every event on the call clock, and the same line in the log.

The event list is the call's record (tests, transcripts, later the call record); the log line is
for operators, so what may be a secret is masked there: keys pressed are PINs and card numbers as
often as menu choices, so a log line shows only how many were pressed.
"""

from __future__ import annotations

from typing import Any

import structlog

from ivr_bridge.call.clock import CallClock

log = structlog.get_logger("ivr_bridge.call.conductor")

MAX_EVENTS = 5000
"""Events kept per call (a call that loops for hours must not grow memory without bound)."""
_KEYPAD = frozenset("0123456789*#")


class CallEventLog:
    def __init__(self, clock: CallClock, max_events: int = MAX_EVENTS) -> None:
        self._clock = clock
        self._max_events = max_events
        self.events: list[dict[str, Any]] = []

    def record(self, kind: str, **fields: Any) -> None:
        call_ms = round(self._clock.now_ms())
        if len(self.events) < self._max_events:
            self.events.append({"kind": kind, "call_ms": call_ms, **fields})
        log.info(kind.replace("_", " "), call_ms=call_ms, **mask_keypad(fields))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind]


def mask_keypad(fields: dict[str, Any]) -> dict[str, Any]:
    """Digit strings in ``digit``/``value`` fields become one bullet per key."""
    masked = dict(fields)
    for name in ("digit", "value"):
        value = masked.get(name)
        if isinstance(value, str) and value and set(value) <= _KEYPAD:
            masked[name] = "•" * len(value)
    return masked
