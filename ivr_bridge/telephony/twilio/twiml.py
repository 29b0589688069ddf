"""TwiML documents the bridge returns, built with twilio-python (never string templates).

Each builder validates what Twilio would otherwise reject silently or mid-call: a stream URL
with a query string (dropped by Twilio), an oversized ``<Parameter>``, a malformed dial target.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from twilio.twiml.voice_response import VoiceResponse

from ivr_bridge.telephony.twilio.models import PARAMETER_MAX_CHARS

__all__ = ["connect_stream", "dial", "hangup", "say_and_hangup"]


DIAL_TIMEOUT_RANGE_S = (5, 600)
"""Ring timeout range ``<Dial timeout>`` honours (seconds)."""

SAY_MAX_CHARS = 4096
"""Longest text one ``<Say>`` accepts."""

# E.164: "+", a non-zero country code digit, at most 15 digits in total.
_E164 = re.compile(r"\+[1-9]\d{5,14}")
# Visual separators people write in config files ("+1 (415) 555-0100").
_PHONE_SEPARATORS = re.compile(r"[\s().-]")
_SIP_URI = re.compile(r"sip:(?:[^@\s<>]+@)?[^@\s<>;]+(?:;[^\s<>]*)?", re.IGNORECASE)


def connect_stream(
    stream_url: str,
    action_url: str,
    parameters: Mapping[str, str],
    status_callback: str | None = None,
) -> str:
    """``<Connect action><Stream url><Parameter/>…</Stream></Connect>`` and nothing after it.

    ``<Connect>`` blocks until our server closes the socket; Twilio then requests
    ``action_url`` for the next TwiML (hang up, transfer). A verb after ``<Connect>`` would run
    instead, so none is emitted.
    """
    _check_stream_url(stream_url)
    if not action_url:
        raise ValueError("action_url is empty: without it the call ends when the stream closes")
    for name, value in parameters.items():
        _check_parameter(name, value)

    response = VoiceResponse()
    connect = response.connect(action=action_url)
    stream = connect.stream(url=stream_url, status_callback=status_callback)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    return str(response.to_xml())


def hangup() -> str:
    """``<Hangup/>``: the answer to the after-stream request when the dialog ended the call."""
    response = VoiceResponse()
    response.hangup()
    return str(response.to_xml())


def dial(number: str, *, caller_id: str | None = None, timeout_s: int | None = None) -> str:
    """``<Dial>`` to transfer the caller to an E.164 phone number or a ``sip:`` URI.

    Phone numbers may contain spaces, dashes, dots or parentheses; they are removed.
    """
    if timeout_s is not None:
        low, high = DIAL_TIMEOUT_RANGE_S
        if isinstance(timeout_s, bool) or not low <= timeout_s <= high:
            raise ValueError(
                f"timeout_s must be an integer from {low} to {high}, got {timeout_s!r}"
            )

    response = VoiceResponse()
    target = number.strip()
    if target.lower().startswith("sip:"):
        if not _SIP_URI.fullmatch(target):
            raise ValueError(f"number {number!r} is not a valid sip: URI (sip:user@host)")
        if caller_id is not None and (not caller_id or any(c.isspace() for c in caller_id)):
            raise ValueError(f"caller_id {caller_id!r} must be a non-empty token without spaces")
        sip_dial = response.dial(caller_id=caller_id, timeout=timeout_s)
        sip_dial.sip(target)
    else:
        phone = _e164("number", number)
        from_number = None if caller_id is None else _e164("caller_id", caller_id)
        response.dial(phone, caller_id=from_number, timeout=timeout_s)
    return str(response.to_xml())


def say_and_hangup(text: str, *, voice: str | None = None, language: str | None = None) -> str:
    """Apologise with Twilio's own ``<Say>`` and hang up.

    Only for when the bridge cannot serve a call at all (speech server down, overload): the
    normal voice comes from our speech sessions, never from ``<Say>``.
    """
    if not text.strip():
        raise ValueError("text is empty: the caller would hear silence before the hang-up")
    if len(text) > SAY_MAX_CHARS:
        raise ValueError(f"text is {len(text)} chars; <Say> accepts at most {SAY_MAX_CHARS}")
    response = VoiceResponse()
    response.say(text, voice=voice, language=language)
    response.hangup()
    return str(response.to_xml())


def _check_stream_url(stream_url: str) -> None:
    parts = urlsplit(stream_url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError(f"stream_url must be an absolute ws:// or wss:// URL, got {stream_url!r}")
    if "?" in stream_url or "#" in stream_url:
        raise ValueError(
            f"stream_url must not have a query string (Twilio drops it; use parameters), "
            f"got {stream_url!r}"
        )


def _check_parameter(name: str, value: str) -> None:
    if not name:
        raise ValueError("stream parameter with an empty name")
    size = len(name) + len(value)
    if size >= PARAMETER_MAX_CHARS:
        raise ValueError(
            f"stream parameter {name!r}: name+value is {size} chars; "
            f"Twilio requires fewer than {PARAMETER_MAX_CHARS}"
        )


def _e164(field: str, raw: str) -> str:
    phone = _PHONE_SEPARATORS.sub("", raw)
    if not _E164.fullmatch(phone):
        hint = " or a sip: URI" if field == "number" else ""
        raise ValueError(f"{field} {raw!r} is not an E.164 phone number like +14155550100{hint}")
    return phone
