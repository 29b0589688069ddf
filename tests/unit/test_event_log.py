"""What a call's log lines may show: no keypad digits, no value the flow marked sensitive, no
caller's full phone number; the call's own event list keeps everything."""

from __future__ import annotations

from ivr_bridge.call.clock import CallClock
from ivr_bridge.call.event_log import CallEventLog, mask_phone_numbers


def test_a_sensitive_value_and_runs_of_its_digits_are_masked_in_log_lines_only() -> None:
    events = CallEventLog(CallClock())
    events.mark_sensitive("55501234")
    events.mark_sensitive("42.17")
    said = "The balance on account ending 1234 is 42.17 dollars. Call 555 0100 for help."
    shown = events.masked({"text": said, "utterance": 3})
    assert shown["text"] == (
        "The balance on account ending •••• is ••••• dollars. Call ••• 0100 for help."
    )
    assert shown["utterance"] == 3
    events.record("bot_says", text=said)
    assert events.events[-1]["text"] == said  # the call's record is untouched


def test_keys_are_masked_and_phone_numbers_keep_their_last_four_digits() -> None:
    events = CallEventLog(CallClock())
    assert events.masked({"digit": "7", "value": "1234#"}) == {"digit": "•", "value": "•••••"}
    params = {"From": "+14155550123", "To": "+15005550006", "flow": "support_line.yaml"}
    assert mask_phone_numbers(params) == {
        "From": "••••••••0123",
        "To": "••••••••0006",
        "flow": "support_line.yaml",
    }


def test_digits_read_back_as_words_are_masked_too() -> None:
    events = CallEventLog(CallClock())
    events.mark_sensitive("55505678")
    events.mark_sensitive("forty-two dollars and seventeen cents")
    said = (
        "The balance on account ending five six seven eight is forty-two dollars and seventeen "
        "cents. Press one two three for more."
    )
    shown = events.masked({"text": said})["text"]
    assert shown == (
        "The balance on account ending •••• is " + "•" * 37 + ". Press one two three for more."
    )
