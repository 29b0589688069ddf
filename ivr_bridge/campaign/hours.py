"""Calling hours in the callee's own local time.

The rule that matters (47 CFR 64.1200(c)(1) in the US, and common decency everywhere) is about
the clock on the callee's wall, not ours: 08:00-21:00 where the phone rings. So every question
here takes an instant (an aware datetime) and the callee's IANA zone, and answers in instants.
Daylight-saving changes are the zone database's business: "08:00 local" is built per day with
``zoneinfo``, so the window moves with the callee's clock twice a year.

A call should also *end* inside the hours, so the last moment to dial is ``end`` minus
``call_room`` (5 minutes by default): a reminder dialled at 20:59 would talk until after 21:00.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ivr_bridge.errors import CampaignError

WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_weekdays(text: str) -> frozenset[int]:
    """``mon-fri``, ``mon,wed,fri``, ``mon-sat`` or ``all`` → weekday numbers (Monday = 0)."""
    text = text.strip().lower()
    if text in ("all", "every", "*"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        first, _, last = part.partition("-")
        try:
            start = WEEKDAY_NAMES.index(first.strip()[:3])
            end = WEEKDAY_NAMES.index(last.strip()[:3]) if last else start
        except ValueError:
            raise CampaignError(
                f"calling days {text!r}: use day names like 'mon-fri' or 'mon,wed,fri'"
            ) from None
        day = start
        while True:
            days.add(day)
            if day == end:
                break
            day = (day + 1) % 7
    return frozenset(days)


def parse_clock(text: str) -> time:
    """``08:00`` / ``8:30`` → a time of day."""
    try:
        hours, minutes = text.strip().split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise CampaignError(f"time of day {text!r}: use HH:MM, e.g. 08:00") from None


@dataclass(frozen=True, slots=True)
class CallingHours:
    """When a callee may be called, in the callee's local time."""

    start: time = time(8, 0)
    end: time = time(21, 0)
    weekdays: frozenset[int] = field(default_factory=lambda: frozenset(range(6)))  # Mon-Sat
    call_room: timedelta = timedelta(minutes=5)
    """Room left for the call itself: nobody is dialled later than ``end - call_room``."""

    def __post_init__(self) -> None:
        if not self.weekdays:
            raise CampaignError("calling hours allow no day of the week: name at least one")
        opening = datetime.combine(date(2000, 1, 3), self.start)
        closing = datetime.combine(date(2000, 1, 3), self.end) - self.call_room
        if closing <= opening:
            raise CampaignError(
                f"calling hours {self.start:%H:%M}-{self.end:%H:%M} leave no time to dial "
                f"(calls need {int(self.call_room.total_seconds() // 60)} min before the end)"
            )

    def window_on(self, day: date, zone: ZoneInfo) -> tuple[datetime, datetime] | None:
        """The dialling window of one local calendar day, as UTC instants (None: a day off)."""
        if day.weekday() not in self.weekdays:
            return None
        opens = datetime.combine(day, self.start, tzinfo=zone).astimezone(UTC)
        closes = datetime.combine(day, self.end, tzinfo=zone).astimezone(UTC) - self.call_room
        return opens, closes

    def allows(self, when: datetime, zone: ZoneInfo) -> bool:
        """May a call be dialled at ``when``?"""
        window = self.window_on(when.astimezone(zone).date(), zone)
        return window is not None and window[0] <= when <= window[1]

    def next_open(self, when: datetime, zone: ZoneInfo) -> datetime:
        """The earliest instant at or after ``when`` at which a call may be dialled."""
        day = when.astimezone(zone).date()
        for offset in range(8):  # at least one weekday is allowed, so a week always finds it
            window = self.window_on(day + timedelta(days=offset), zone)
            if window is None:
                continue
            opens, closes = window
            if when <= closes:
                return max(when, opens)
        raise AssertionError("unreachable: a week always holds an allowed day")

    def describe(self) -> str:
        days = ",".join(WEEKDAY_NAMES[d] for d in sorted(self.weekdays))
        return f"{self.start:%H:%M}-{self.end:%H:%M} local, {days}"
