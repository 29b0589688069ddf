"""How Twilio signs what it sends: the ``X-Twilio-Signature`` header, and its User-Agent."""

from __future__ import annotations

from twilio.request_validator import RequestValidator

USER_AGENT = "TwilioProxy/1.1 (ivr-bridge simulated caller)"


def sign(auth_token: str | None, url: str, params: dict[str, str]) -> dict[str, str]:
    """The ``X-Twilio-Signature`` header for a request, or nothing without an auth token."""
    if not auth_token:
        return {}
    return {"X-Twilio-Signature": RequestValidator(auth_token).compute_signature(url, params)}
