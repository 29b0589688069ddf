"""When each reminder call may go out, and when a failed one is tried again.

A campaign reminds each contact in *rounds*: relative to the appointment ("48 h and 24 h
before") or inside one fixed window. A round opens at its lead time and closes when the next
round opens, or ``cutoff`` before the appointment (a reminder an hour before is noise), or at
the fixed window's end. Every dial time is moved into the callee's calling hours; one that
would land after its round closes is not placed late: the round ends ``expired_window``.

Retries follow what reminder systems converge on (``outbound.md``): busy again in 10 minutes,
no answer in 2 hours (or the next window), a failed call once more unless the number itself is
invalid, at most 3 attempts a round; a person's decision, a fax tone or a voicemail left ends
the round.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from ivr_bridge.campaign.hours import CallingHours
from ivr_bridge.campaign.outcomes import DECISIONS, INVALID_NUMBER_ERRORS, Outcome
from ivr_bridge.errors import CampaignError


@dataclass(frozen=True, slots=True)
class Round:
    index: int
    opens: datetime
    closes: datetime


@dataclass(frozen=True, slots=True)
class Schedule:
    """Relative rounds (``leads``) or one absolute window (``window``), never both."""

    leads: tuple[timedelta, ...] = (timedelta(hours=48), timedelta(hours=24))
    cutoff: timedelta = timedelta(hours=2)
    window: tuple[datetime, datetime] | None = None

    def __post_init__(self) -> None:
        if self.window is not None:
            opens, closes = self.window
            if opens.tzinfo is None or closes.tzinfo is None:
                raise CampaignError("a fixed window needs times with a zone or offset")
            if closes <= opens:
                raise CampaignError("a fixed window must end after it starts")
            return
        if not self.leads:
            raise CampaignError("a schedule needs at least one lead time (e.g. 24h)")
        if any(lead <= self.cutoff for lead in self.leads):
            raise CampaignError(
                f"every lead time must be longer than the cutoff ({_hours(self.cutoff)})"
            )
        if len(set(self.leads)) != len(self.leads):
            raise CampaignError("two rounds with the same lead time")

    def rounds(self, appointment: datetime) -> list[Round]:
        if self.window is not None:
            opens, closes = self.window
            return [Round(0, opens, min(closes, appointment - self.cutoff))]
        leads = sorted(self.leads, reverse=True)
        last = appointment - self.cutoff
        result = []
        for index, lead in enumerate(leads):
            opens = appointment - lead
            closes = appointment - leads[index + 1] if index + 1 < len(leads) else last
            result.append(Round(index, opens, closes))
        return result


def parse_leads(text: str) -> tuple[timedelta, ...]:
    """``48h,24h`` / ``2d, 90m`` → lead times."""
    leads = []
    for part in text.split(","):
        part = part.strip().lower()
        units = {"d": 86400, "h": 3600, "m": 60}
        try:
            leads.append(timedelta(seconds=float(part[:-1]) * units[part[-1]]))
        except (KeyError, ValueError, IndexError):
            raise CampaignError(
                f"lead time {part!r}: write a number and a unit, e.g. 48h, 2d or 90m"
            ) from None
    return tuple(leads)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3
    busy: timedelta = timedelta(minutes=10)
    no_answer: timedelta = timedelta(hours=2)
    failed: timedelta = timedelta(minutes=15)
    failed_retries: int = 1
    """Transient failures are tried this many more times; an invalid number never."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise CampaignError("max attempts must be at least 1")


def first_dial(
    round_: Round, hours: CallingHours, zone: ZoneInfo, now: datetime
) -> datetime | None:
    """When the round's first call may go out; None: its window has gone (expired_window)."""
    when = hours.next_open(max(now, round_.opens), zone)
    return when if when <= round_.closes else None


def retry_at(
    policy: RetryPolicy,
    outcome: Outcome,
    *,
    attempts: int,
    failures: int = 0,
    error_code: int | None = None,
    ended_at: datetime,
    round_: Round,
    hours: CallingHours,
    zone: ZoneInfo,
) -> datetime | None:
    """When to try again after an attempt ended with ``outcome``; None: the round is over.

    ``attempts`` counts this round's attempts so far (this one included), ``failures`` those
    that ended ``failed`` (this one included)."""
    if attempts >= policy.max_attempts:
        return None
    if outcome in DECISIONS or outcome in (
        Outcome.VOICEMAIL,
        Outcome.FAX,
        Outcome.NO_DECISION,
        Outcome.EXPIRED_WINDOW,
    ):
        return None
    if outcome is Outcome.BUSY:
        delay = policy.busy
    elif outcome is Outcome.NO_ANSWER:
        delay = policy.no_answer
    elif outcome is Outcome.FAILED:
        if error_code in INVALID_NUMBER_ERRORS or failures > policy.failed_retries:
            return None
        delay = policy.failed
    else:
        raise ValueError(f"no retry rule for {outcome}")
    when = hours.next_open(ended_at + delay, zone)
    return when if when <= round_.closes else None


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:g}h"
