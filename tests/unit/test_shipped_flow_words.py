"""What callers of the shipped flows hear where a value is read out (the say-as filters): the
reminder's date and time in words, not "2026-12-03 at 15:30"."""

from __future__ import annotations

from pathlib import Path

from ivr_bridge.call.testing import ScriptedCall, digits
from ivr_bridge.dialog.flow import load_flow, run_flow
from ivr_bridge.errors import CallEnding
from tests.unit.flow_fakes import services

FLOWS = Path(__file__).resolve().parents[2] / "flows"


async def _reminder(parameters: dict[str, str]) -> ScriptedCall:
    call = ScriptedCall(digits("1"), parameters=parameters)
    try:
        await run_flow(load_flow(FLOWS / "appointment_reminder.yaml"), call, services())
    except CallEnding:
        pass
    return call


async def test_a_reminder_with_a_date_and_time_says_them_in_words() -> None:
    call = await _reminder({"name": "Ann", "date": "2026-12-03", "at": "15:30"})
    assert call.said[0] == (
        "Hello Ann. This is the clinic with a reminder of your appointment"
        " on Thursday, December third at three thirty PM."
    )
    assert (
        "Your appointment on Thursday, December third at three thirty PM is confirmed."
        in (call.said[-2])
    )


async def test_a_reminder_with_its_time_in_words_says_them_as_given() -> None:
    call = await _reminder({"name": "Ann", "time": "tomorrow at noon", "clinic": "Riverside"})
    assert call.said[0] == (
        "Hello Ann. This is Riverside with a reminder of your appointment tomorrow at noon."
    )
