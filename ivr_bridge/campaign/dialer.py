"""Placing calls through Twilio's REST API with twilio-python's async client.

The sync client would block the event loop for a whole HTTP round trip per call; the async one
(``AsyncTwilioHttpClient``, aiohttp underneath) does not. The REST base URL is a setting
(``TWILIO_API_BASE_URL``), so the same code dials the real Twilio or the offline stand-in in
``ivr_bridge.sim.twilio_rest``.

What each call carries (``outbound.md``): the voice webhook with the app and the attempt as
query parameters (the voice webhook turns them into ``<Parameter>``s, since Twilio drops query
strings on stream URLs), status callbacks for every step, asynchronous answering-machine
detection that waits for the end of the greeting (``DetectMessageEnd``), a ring timeout and a
time limit. A refusal is sorted into "try later" (429, 5xx, a network error) and "this attempt
failed" (4xx with Twilio's error code, e.g. 21211 for an invalid number).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]
_PHONE = re.compile(r"\+\d{4,11}(\d{4})\b")


def mask_phones(text: str) -> str:
    """Twilio's error messages quote the number ("Invalid 'To' Phone Number: +1415..."): a
    message for a log line keeps its last four digits only."""
    return _PHONE.sub(lambda m: "+" + "•" * (len(m.group()) - 5) + m.group(1), text)


# twilio-python logs every request's parameters at INFO: phone numbers do not belong in logs.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)


@dataclass(frozen=True, slots=True)
class DialRequest:
    to: str
    from_: str
    attempt_id: int
    app: str
    ring_timeout_s: int
    time_limit_s: int
    parameters: Mapping[str, str] = field(default_factory=dict)
    """More for the call's app (the reminder's script and the contact's language)."""


@dataclass(frozen=True, slots=True)
class Dialed:
    call_sid: str


@dataclass(frozen=True, slots=True)
class Refused:
    """Twilio would not place the call. ``retry`` (429, 5xx, network): the attempt waits and
    goes again; otherwise it failed, with Twilio's ``code`` when there is one."""

    retry: bool
    code: int | None
    message: str


DialResult = Dialed | Refused


@dataclass(frozen=True, slots=True)
class PlacedCall:
    """A call as the Calls API reports it (for the reconciler)."""

    call_sid: str
    to: str
    from_: str
    created_at: float
    status: str
    duration_s: int | None
    answered_by: str | None


class Dialer(Protocol):
    async def dial(self, request: DialRequest) -> DialResult: ...

    async def find_calls(self, to: str, from_: str, *, since: float) -> list[PlacedCall]:
        """Calls placed to ``to`` from ``from_`` created at or after ``since``."""
        ...

    async def fetch(self, call_sid: str) -> PlacedCall | None: ...

    async def close(self) -> None: ...


class TwilioDialer:
    """Dials through the Calls API; ``public_url`` is where Twilio reaches this bridge."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        public_url: str,
        api_base_url: str = "https://api.twilio.com",
        timeout_s: float = 10.0,
    ) -> None:
        self._http = AsyncTwilioHttpClient(timeout=timeout_s)
        self._client = Client(account_sid, auth_token, http_client=self._http)
        self._client.api.base_url = api_base_url.rstrip("/")
        self._public = public_url.rstrip("/")

    def urls(self, request: DialRequest) -> dict[str, str]:
        query = urlencode(
            {**request.parameters, "app": request.app, "attempt": str(request.attempt_id)}
        )
        callbacks = urlencode({"attempt": str(request.attempt_id)})
        return {
            "url": f"{self._public}/twilio/voice?{query}",
            "status_callback": f"{self._public}/twilio/campaign/status?{callbacks}",
            "async_amd_status_callback": f"{self._public}/twilio/campaign/amd?{callbacks}",
        }

    async def dial(self, request: DialRequest) -> DialResult:
        urls = self.urls(request)
        try:
            call = await self._client.calls.create_async(
                to=request.to,
                from_=request.from_,
                url=urls["url"],
                method="POST",
                status_callback=urls["status_callback"],
                status_callback_method="POST",
                status_callback_event=STATUS_EVENTS,
                machine_detection="DetectMessageEnd",
                async_amd="true",
                async_amd_status_callback=urls["async_amd_status_callback"],
                async_amd_status_callback_method="POST",
                timeout=request.ring_timeout_s,
                time_limit=request.time_limit_s,
            )
        except TwilioRestException as exc:
            retry = exc.status == 429 or exc.status >= 500
            code = exc.code if isinstance(exc.code, int) else None
            return Refused(retry, code, mask_phones(f"HTTP {exc.status}: {exc.msg}"))
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return Refused(True, None, f"Twilio unreachable: {exc}")
        return Dialed(str(call.sid))

    async def find_calls(self, to: str, from_: str, *, since: float) -> list[PlacedCall]:
        calls = await self._client.calls.list_async(to=to, from_=from_, limit=20)
        found = [_placed(call) for call in calls]
        return [call for call in found if call.created_at >= since]

    async def fetch(self, call_sid: str) -> PlacedCall | None:
        try:
            return _placed(await self._client.calls(call_sid).fetch_async())
        except TwilioRestException as exc:
            if exc.status == 404:
                return None
            raise

    async def close(self) -> None:
        await self._http.close()


def _placed(call: Any) -> PlacedCall:
    created = call.date_created.timestamp() if call.date_created else 0.0
    duration = int(call.duration) if call.duration and str(call.duration).isdigit() else None
    return PlacedCall(
        str(call.sid),
        str(call.to),
        str(call._from),
        created,
        str(call.status),
        duration,
        call.answered_by,
    )
