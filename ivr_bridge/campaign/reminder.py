"""What a reminder call needs from its campaign, and what it reports back.

The reminder dialog (``ivr_bridge.dialog.reminder``) programs against this small interface;
``CampaignStore`` implements it, and tests hand the dialog a dictionary-backed fake.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ReminderDetails:
    name: str
    appointment: datetime
    """In the callee's local time."""
    business: str
    callback_number: str
    fields: Mapping[str, str] = field(default_factory=dict)
    """The contact's extra CSV columns (templates read them as ``fields.NAME``)."""


class ReminderBackend(Protocol):
    async def reminder_details(self, attempt_id: int) -> ReminderDetails | None:
        """The callee and the appointment of an attempt (None: no such attempt)."""
        ...

    async def report_reminder(
        self, attempt_id: int, call_sid: str, *, decision: str | None, voicemail_left: bool
    ) -> None:
        """What the call found out: the callee's choice (``confirmed``, ``rescheduled``,
        ``cancelled``, ``opted_out``; None: none), or that a message was left."""
        ...
