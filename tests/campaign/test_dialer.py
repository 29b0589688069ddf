"""The Twilio dialer against the REST stand-in: what Twilio's answers become."""

from __future__ import annotations

from ivr_bridge.campaign.dialer import Dialed, DialRequest, Refused, TwilioDialer, mask_phones
from ivr_bridge.sim.twilio_rest import Persona, TwilioRestStandIn

ACCOUNT = "AC" + "3" * 32
TOKEN = "t" * 32


def request(to: str) -> DialRequest:
    return DialRequest(to, "+15005550006", 7, "reminder", ring_timeout_s=25, time_limit_s=300)


async def test_what_twilio_answers_becomes_a_dial_result() -> None:
    standin = TwilioRestStandIn(
        account_sid=ACCOUNT,
        auth_token=TOKEN,
        personas=lambda to: Persona("invalid" if to.endswith("9") else "failed"),
    )
    await standin.start()
    good = TwilioDialer(
        ACCOUNT, TOKEN, public_url="http://127.0.0.1:9/", api_base_url=standin.base_url
    )
    wrong = TwilioDialer(
        ACCOUNT, "x" * 32, public_url="http://127.0.0.1:9", api_base_url=standin.base_url
    )
    nowhere = TwilioDialer(
        ACCOUNT, TOKEN, public_url="http://127.0.0.1:9", api_base_url="http://127.0.0.1:9"
    )
    try:
        placed = await good.dial(request("+13125550100"))
        assert isinstance(placed, Dialed) and placed.call_sid in standin.calls
        call = standin.calls[placed.call_sid]
        assert call.form["Url"] == "http://127.0.0.1:9/twilio/voice?app=reminder&attempt=7"
        assert call.form["MachineDetection"] == "DetectMessageEnd"
        assert call.form["AsyncAmd"] == "true"
        assert call.form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
        assert (call.form["Timeout"], call.form["TimeLimit"]) == ("25", "300")
        found = await good.find_calls("+13125550100", "+15005550006", since=0)
        assert [c.call_sid for c in found] == [placed.call_sid]

        invalid = await good.dial(request("+13125550109"))
        assert invalid == Refused(False, 21211, invalid.message)  # type: ignore[union-attr]
        assert "+13125550109" not in invalid.message and "0109" in invalid.message  # type: ignore[union-attr]
        refused = await wrong.dial(request("+13125550100"))
        assert isinstance(refused, Refused) and not refused.retry and refused.code == 20003
        down = await nowhere.dial(request("+13125550100"))
        assert isinstance(down, Refused) and down.retry  # try again later
    finally:
        for dialer in (good, wrong, nowhere):
            await dialer.close()
        await standin.close()


def test_phone_numbers_in_messages_keep_their_last_four_digits() -> None:
    assert mask_phones("Invalid 'To' Phone Number: +14155550100.") == (
        "Invalid 'To' Phone Number: +•••••••0100."
    )
