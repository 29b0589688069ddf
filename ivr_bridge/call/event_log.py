"""The call's own timeline: every event on the call clock, and the same line in the log.

The event list is the call's record (tests, transcripts, later the call record); the log line is
for operators, so what may be a secret is masked there. Keys pressed are PINs and card numbers
as often as menu choices, so a log line shows only how many were pressed. Values a flow marks
sensitive (an account number entered, a balance looked up) are masked wherever they appear in a
log line, in the bot's words too: "ending ••••" rather than the last four digits, whether the
bot said them as digits or as words ("ending five six seven eight", the ``digits`` filter).
Phone numbers in the call's parameters keep only their last four digits.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import structlog

from ivr_bridge.call.clock import CallClock

log = structlog.get_logger("ivr_bridge.call.conductor")

MAX_EVENTS = 5000
"""Events kept per call (a call that loops for hours must not grow memory without bound)."""
MAX_SENSITIVE = 256
"""Values masked per call: an amount looked up is marked with the words it may be said in too."""
_KEYPAD = frozenset("0123456789*#")
_DIGIT_RUN = re.compile(r"\d{3,}")
_DIGIT_WORDS = {
    "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
_WORD = "(?:" + "|".join(_DIGIT_WORDS) + ")"
_SPOKEN_DIGIT_RUN = re.compile(rf"\b{_WORD}(?:[ ,]+{_WORD}){{2,}}\b", re.IGNORECASE)
_PHONE_FIELDS = frozenset({"From", "To", "Caller", "Called", "caller", "callee"})


RECORD_ONLY_FIELDS = frozenset({"caller_text", "full_text", "unheard"})
"""Fields kept in the call's events (its record) but never in its log line: what an LLM caller
said, and what the bot meant to say beyond what the caller heard (its log line says that)."""

EventObserver = Callable[[str, dict[str, Any]], None]
"""Told every event as it is recorded (``kind``, fields): metrics follow the call live."""


class CallEventLog:
    def __init__(
        self,
        clock: CallClock,
        max_events: int = MAX_EVENTS,
        observer: EventObserver | None = None,
    ) -> None:
        self._clock = clock
        self._max_events = max_events
        self._observer = observer
        self._sensitive: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.dropped = 0
        """Events past ``max_events`` (logged, observed, not kept)."""

    def record(self, kind: str, **fields: Any) -> None:
        call_ms = round(self._clock.now_ms())
        if len(self.events) < self._max_events:
            self.events.append({"kind": kind, "call_ms": call_ms, **fields})
        else:
            self.dropped += 1
        if self._observer is not None:
            try:
                self._observer(kind, fields)
            except Exception:  # a figure must never cost the call
                log.exception("event observer failed", event=kind)
        shown = {k: v for k, v in fields.items() if k not in RECORD_ONLY_FIELDS}
        log.info(kind.replace("_", " "), call_ms=call_ms, **self.masked(shown))

    @property
    def sensitive(self) -> tuple[str, ...]:
        """The values a flow marked sensitive so far (longest first)."""
        return tuple(self._sensitive)

    def mark_sensitive(self, value: str) -> None:
        value = value.strip()
        if len(value) >= 2 and value not in self._sensitive:
            self._sensitive.append(value)
            self._sensitive.sort(key=len, reverse=True)  # longest first: no half-masked value
            del self._sensitive[MAX_SENSITIVE:]

    def masked(self, fields: dict[str, Any]) -> dict[str, Any]:
        """``fields`` as a log line may show them."""
        masked = mask_keypad(fields)
        if self._sensitive:
            for name, value in masked.items():
                if isinstance(value, str):
                    masked[name] = self.mask_text(value)
        return masked

    def mask_text(self, text: str) -> str:
        for secret in self._sensitive:
            text = text.replace(secret, "•" * len(secret))
        digits = [s for s in self._sensitive if s.isdigit()]
        if digits:  # "ending 5678" of an account number 12345678
            text = _DIGIT_RUN.sub(
                lambda m: (
                    "•" * len(m.group()) if any(m.group() in d for d in digits) else m.group()
                ),
                text,
            )
            text = _SPOKEN_DIGIT_RUN.sub(lambda m: _mask_spoken(m.group(), digits), text)
        return text

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind]


def _mask_spoken(words: str, secrets: list[str]) -> str:
    """ "five six seven eight" → "••••" when 5678 is part of a sensitive number."""
    spoken = "".join(_DIGIT_WORDS[w.lower()] for w in re.findall(r"[a-zA-Z]+", words))
    return "•" * len(spoken) if any(spoken in s for s in secrets) else words


def mask_keypad(fields: dict[str, Any]) -> dict[str, Any]:
    """Digit strings in ``digit``/``value`` fields become one bullet per key."""
    masked = dict(fields)
    for name in ("digit", "value"):
        value = masked.get(name)
        if isinstance(value, str) and value and set(value) <= _KEYPAD:
            masked[name] = "•" * len(value)
    return masked


def mask_phone_numbers(parameters: dict[str, str]) -> dict[str, str]:
    """Call parameters for a log line: phone numbers keep their last four digits."""
    return {
        name: ("•" * max(0, len(value) - 4) + value[-4:]) if name in _PHONE_FIELDS else value
        for name, value in parameters.items()
    }
