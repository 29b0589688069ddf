"""A campaign's settings: schedule, calling hours, retries and pace, stored as JSON.

One pydantic model, so the CLI, the HTTP API and the database agree on names, defaults and
limits, and a bad value is refused with the field it is in.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ivr_bridge.campaign.contacts import E164_PATTERN
from ivr_bridge.campaign.hours import CallingHours, parse_clock, parse_weekdays
from ivr_bridge.campaign.schedule import RetryPolicy, Schedule, parse_leads
from ivr_bridge.campaign.script import DEFAULT_SCRIPT, SCRIPT_NAME
from ivr_bridge.errors import CampaignError


class CampaignPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    business: str = Field(default="your clinic", min_length=1, max_length=80)
    """Who is calling, said in the first sentence of every call and message."""
    callback_number: str | None = Field(default=None, pattern=E164_PATTERN)
    """The number voicemails and unanswered calls give (default: the caller id)."""
    leads: str = "48h,24h"
    """Rounds, as lead times before the appointment."""
    cutoff: str = "2h"
    """No call in this last stretch before the appointment."""
    window_start: datetime | None = None
    """A fixed window instead of lead times (both ends with an offset)."""
    window_end: datetime | None = None
    hours_start: str = "08:00"
    hours_end: str = "21:00"
    days: str = "mon-sat"
    call_room_min: float = Field(default=5, ge=0, le=120)
    max_attempts: int = Field(default=3, ge=1, le=10)
    busy_retry_min: float = Field(default=10, ge=1)
    no_answer_retry_min: float = Field(default=120, ge=1)
    failed_retry_min: float = Field(default=15, ge=1)
    max_concurrent: int = Field(default=20, ge=1, le=10_000)
    """Calls of this campaign live at once."""
    ring_timeout_s: int = Field(default=25, ge=5, le=600)
    time_limit_s: int = Field(default=300, ge=30, le=14_400)
    script: str = Field(default=DEFAULT_SCRIPT, pattern=SCRIPT_NAME)
    """The words calls say: ``flows/reminders/<script>.yaml``."""

    @field_validator("leads", "cutoff")
    @classmethod
    def _durations(cls, value: str) -> str:
        parse_leads(value)
        return value

    @field_validator("hours_start", "hours_end")
    @classmethod
    def _clock(cls, value: str) -> str:
        parse_clock(value)
        return value

    @field_validator("days")
    @classmethod
    def _days(cls, value: str) -> str:
        parse_weekdays(value)
        return value

    @classmethod
    def around_the_clock(cls, now: float, **settings: object) -> CampaignPlan:
        """A fixed window from an hour ago to a day from now, dialling at any hour: for demos
        and tests against the Twilio stand-in, never for real callees."""
        start = datetime.fromtimestamp(now, UTC) - timedelta(hours=1)
        values: dict[str, object] = {
            "window_start": start,
            "window_end": start + timedelta(days=1),
            "hours_start": "00:00",
            "hours_end": "23:59",
            "days": "all",
            "call_room_min": 0,
        }
        return cls.model_validate({**values, **settings})

    def schedule(self) -> Schedule:
        window = None
        if self.window_start is not None or self.window_end is not None:
            if self.window_start is None or self.window_end is None:
                raise CampaignError("a fixed window needs both window_start and window_end")
            window = (self.window_start.astimezone(UTC), self.window_end.astimezone(UTC))
        cutoff = parse_leads(self.cutoff)[0]
        if window is not None:
            return Schedule(leads=(cutoff + timedelta(seconds=1),), cutoff=cutoff, window=window)
        return Schedule(leads=parse_leads(self.leads), cutoff=cutoff)

    def hours(self) -> CallingHours:
        return CallingHours(
            start=parse_clock(self.hours_start),
            end=parse_clock(self.hours_end),
            weekdays=parse_weekdays(self.days),
            call_room=timedelta(minutes=self.call_room_min),
        )

    def retries(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            busy=timedelta(minutes=self.busy_retry_min),
            no_answer=timedelta(minutes=self.no_answer_retry_min),
            failed=timedelta(minutes=self.failed_retry_min),
        )
