"""Calling hours in the callee's time, rounds, retries and pacing: pure, on fixed instants."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from ivr_bridge.campaign.hours import CallingHours, parse_weekdays
from ivr_bridge.campaign.outcomes import Outcome, attempt_outcome
from ivr_bridge.campaign.schedule import RetryPolicy, Schedule, first_dial, parse_leads, retry_at
from ivr_bridge.errors import CampaignError

CHICAGO = ZoneInfo("America/Chicago")
HOURS = CallingHours()


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone).astimezone(UTC)


def test_22_00_local_waits_for_08_00_local_the_next_morning() -> None:
    at_ten_pm = local(CHICAGO, 2026, 12, 1, 22, 0)  # a Tuesday
    assert not HOURS.allows(at_ten_pm, CHICAGO)
    assert HOURS.next_open(at_ten_pm, CHICAGO) == local(CHICAGO, 2026, 12, 2, 8, 0)


def test_the_last_dial_leaves_room_for_the_call_before_21_00() -> None:
    assert HOURS.allows(local(CHICAGO, 2026, 12, 1, 20, 55), CHICAGO)
    assert not HOURS.allows(local(CHICAGO, 2026, 12, 1, 20, 56), CHICAGO)


def test_the_window_follows_the_callees_clock_across_daylight_saving() -> None:
    # US clocks go back on 2026-11-01: 08:00 Chicago is 13:00 UTC before, 14:00 UTC after.
    assert HOURS.next_open(local(CHICAGO, 2026, 10, 31, 3, 0), CHICAGO).hour == 13
    assert HOURS.next_open(local(CHICAGO, 2026, 11, 2, 3, 0), CHICAGO).hour == 14


def test_days_off_are_skipped_and_weekdays_parse() -> None:
    weekdays = CallingHours(weekdays=parse_weekdays("mon-fri"))
    saturday = local(CHICAGO, 2026, 12, 5, 10, 0)
    assert weekdays.next_open(saturday, CHICAGO) == local(CHICAGO, 2026, 12, 7, 8, 0)
    assert parse_weekdays("fri-mon") == {4, 5, 6, 0}
    assert parse_weekdays("mon,wed") == {0, 2}
    with pytest.raises(CampaignError, match="day names"):
        parse_weekdays("weekdays")
    with pytest.raises(CampaignError, match="no time to dial"):
        CallingHours(start=time(20, 58), end=time(21, 0))


def test_rounds_run_from_each_lead_to_the_next_and_stop_at_the_cutoff() -> None:
    appointment = local(CHICAGO, 2026, 12, 10, 15, 0)
    first, second = Schedule(leads=parse_leads("24h, 48h")).rounds(appointment)
    assert (first.opens, first.closes) == (
        appointment - timedelta(hours=48),
        appointment - timedelta(hours=24),
    )
    assert (second.opens, second.closes) == (
        appointment - timedelta(hours=24),
        appointment - timedelta(hours=2),
    )
    with pytest.raises(CampaignError, match="longer than the cutoff"):
        Schedule(leads=(timedelta(hours=1),))


def test_a_round_that_cannot_be_reached_in_calling_hours_expires_instead_of_dialling_late() -> None:
    appointment = local(CHICAGO, 2026, 12, 2, 9, 0)  # 09:00: the cutoff is 07:00
    [evening] = Schedule(leads=(timedelta(hours=12),)).rounds(appointment)  # 21:00-07:00
    assert first_dial(evening, HOURS, CHICAGO, now=local(CHICAGO, 2026, 12, 1, 18, 0)) is None
    [earlier] = Schedule(leads=(timedelta(hours=14),)).rounds(appointment)  # 19:00-07:00
    at = first_dial(earlier, HOURS, CHICAGO, now=local(CHICAGO, 2026, 12, 1, 18, 0))
    assert at == local(CHICAGO, 2026, 12, 1, 19, 0)
    assert first_dial(earlier, HOURS, CHICAGO, now=local(CHICAGO, 2026, 12, 1, 20, 56)) is None


def test_retries_follow_the_policy_and_never_leave_the_round() -> None:
    policy = RetryPolicy()
    appointment = local(CHICAGO, 2026, 12, 10, 15, 0)
    [round_] = Schedule(leads=(timedelta(hours=48),)).rounds(appointment)
    ended = local(CHICAGO, 2026, 12, 8, 16, 0)
    common = {"ended_at": ended, "round_": round_, "hours": HOURS, "zone": CHICAGO}
    assert retry_at(policy, Outcome.BUSY, attempts=1, **common) == ended + timedelta(minutes=10)
    assert retry_at(policy, Outcome.NO_ANSWER, attempts=1, **common) == ended + timedelta(hours=2)
    late = {**common, "ended_at": local(CHICAGO, 2026, 12, 8, 20, 0)}
    assert retry_at(policy, Outcome.NO_ANSWER, attempts=1, **late) == local(
        CHICAGO, 2026, 12, 9, 8, 0
    )
    assert retry_at(policy, Outcome.FAILED, attempts=1, failures=1, **common) is not None
    assert retry_at(policy, Outcome.FAILED, attempts=2, failures=2, **common) is None
    assert (
        retry_at(policy, Outcome.FAILED, attempts=1, failures=1, error_code=21211, **common) is None
    )
    assert retry_at(policy, Outcome.BUSY, attempts=3, **common) is None
    for final in (Outcome.CONFIRMED, Outcome.OPTED_OUT, Outcome.VOICEMAIL, Outcome.FAX):
        assert retry_at(policy, final, attempts=1, **common) is None
    near_end = {**common, "ended_at": round_.closes - timedelta(minutes=5)}
    assert retry_at(policy, Outcome.NO_ANSWER, attempts=1, **near_end) is None


def test_attempt_outcomes_from_twilio_status_amd_and_the_dialog() -> None:
    assert attempt_outcome("busy") is Outcome.BUSY
    assert attempt_outcome("no-answer") is Outcome.NO_ANSWER
    assert attempt_outcome("canceled") is Outcome.FAILED
    assert attempt_outcome("completed", "fax") is Outcome.FAX
    assert (
        attempt_outcome("completed", "machine_end_beep", voicemail_left=True) is Outcome.VOICEMAIL
    )
    assert attempt_outcome("completed", "machine_start") is Outcome.NO_ANSWER
    assert attempt_outcome("completed", "human") is Outcome.NO_DECISION
    assert attempt_outcome("completed", "unknown", Outcome.CONFIRMED) is Outcome.CONFIRMED
    with pytest.raises(ValueError, match="not final"):
        attempt_outcome("ringing")
