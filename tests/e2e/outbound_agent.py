"""A naive outbound agent, sharing no code with the bridge's campaigns: it calls every number
it is given through the Calls API (twilio-python, base URL from the environment) and plays the
app at OUTBOUND_APP_URL to whoever answers, with no answering-machine detection."""

from __future__ import annotations

import asyncio
import os

from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client


async def main() -> None:
    http = AsyncTwilioHttpClient()
    client = Client(
        os.environ["TWILIO_ACCOUNT_SID"], os.environ["TWILIO_AUTH_TOKEN"], http_client=http
    )
    client.api.base_url = os.environ["TWILIO_API_BASE_URL"]
    try:
        for number in os.environ["IVR_TEST_NUMBERS"].split(","):
            call = await client.calls.create_async(
                to=number, from_="+15005550006", url=os.environ["OUTBOUND_APP_URL"], timeout=10
            )
            print("dialled", number, call.sid, flush=True)
    finally:
        await http.close()


if __name__ == "__main__":
    asyncio.run(main())
