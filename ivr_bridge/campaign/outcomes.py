"""What one dialled attempt came to, from what Twilio and the call itself said.

Twilio's last ``CallStatus`` says whether anyone picked up (``busy``, ``no-answer``, ``failed``,
``canceled`` or ``completed``); only answering-machine detection says *who* (``AnsweredBy``);
only the reminder dialog says what a person decided. ``attempt_outcome`` folds the three into
the one word a clinic reads in its export. Pure, so the status callback, the reconciler and the
tests all agree on it.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    CONFIRMED = "confirmed"
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"
    OPTED_OUT = "opted_out"
    VOICEMAIL = "voicemail"
    NO_DECISION = "no_decision"
    """A person answered but the call ended before they chose anything."""
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    FAX = "fax"
    EXPIRED_WINDOW = "expired_window"
    """The attempt could no longer be placed inside its window (calling hours, lead time)."""


DECISIONS = frozenset(
    {Outcome.CONFIRMED, Outcome.RESCHEDULED, Outcome.CANCELLED, Outcome.OPTED_OUT}
)
"""A person made a choice: the contact needs no further reminder."""

MACHINE_RESULTS = frozenset({"machine_end_beep", "machine_end_silence", "machine_end_other"})

INVALID_NUMBER_ERRORS = frozenset({13223, 13224, 21211, 21214, 21217, 21219, 21215})
"""Twilio error codes that mean the number itself is wrong: retrying cannot help."""


def attempt_outcome(
    call_status: str,
    answered_by: str | None = None,
    decision: Outcome | None = None,
    *,
    voicemail_left: bool = False,
) -> Outcome:
    """The outcome of an attempt whose final ``CallStatus`` is known."""
    if decision is not None:
        if decision not in DECISIONS:
            raise ValueError(f"{decision} is not a callee's decision")
        return decision
    status = call_status.lower()
    if status == "busy":
        return Outcome.BUSY
    if status == "no-answer":
        return Outcome.NO_ANSWER
    if status in ("failed", "canceled"):
        return Outcome.FAILED
    if status != "completed":
        raise ValueError(f"call status {call_status!r} is not final")
    if answered_by == "fax":
        return Outcome.FAX
    if voicemail_left or answered_by in MACHINE_RESULTS or answered_by == "machine_start":
        return Outcome.VOICEMAIL if voicemail_left else Outcome.NO_ANSWER
    return Outcome.NO_DECISION
