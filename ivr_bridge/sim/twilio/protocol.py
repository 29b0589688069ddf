"""Twilio Media Streams as Twilio speaks it, written from the reference, not from our models.

The simulator builds every message as a plain dict so that it checks the server independently:
if both sides shared one model, a misreading of the protocol would pass unnoticed. Field types
follow Twilio exactly (sequenceNumber, chunk and timestamp are strings; mediaFormat ints).
Server messages are judged the way Twilio judges them: a binary frame is warning 31950; bad JSON,
an unknown event, a missing field or a wrong ``streamSid`` is 31951.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass
from typing import Any

from ivr_bridge.errors import TwilioProtocolError

PROTOCOL = "Call"
VERSION = "1.0.0"
MEDIA_FORMAT: dict[str, Any] = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
FRAME_BYTES = 160
"""20 ms of 8 kHz µ-law: the size of every inbound media frame."""
FRAME_MS = 20

BINARY_FRAME = 31950
INVALID_MESSAGE = 31951


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two-letter prefix + 32 lowercase hex digits."""
    return prefix + secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class StreamIds:
    account_sid: str
    call_sid: str
    stream_sid: str


def connected() -> dict[str, Any]:
    """First message: no sequenceNumber, no streamSid."""
    return {"event": "connected", "protocol": PROTOCOL, "version": VERSION}


def start(ids: StreamIds, custom_parameters: dict[str, str]) -> dict[str, Any]:
    return {
        "event": "start",
        "start": {
            "accountSid": ids.account_sid,
            "streamSid": ids.stream_sid,
            "callSid": ids.call_sid,
            "tracks": ["inbound"],
            "customParameters": dict(custom_parameters),
            "mediaFormat": dict(MEDIA_FORMAT),
        },
    }


def media(chunk: int, timestamp_ms: int, ulaw: bytes) -> dict[str, Any]:
    return {
        "event": "media",
        "media": {
            "track": "inbound",
            "chunk": str(chunk),
            "timestamp": str(timestamp_ms),
            "payload": base64.b64encode(ulaw).decode("ascii"),
        },
    }


def dtmf(digit: str) -> dict[str, Any]:
    return {"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": digit}}


def mark(name: str) -> dict[str, Any]:
    return {"event": "mark", "mark": {"name": name}}


def stop(ids: StreamIds) -> dict[str, Any]:
    return {"event": "stop", "stop": {"accountSid": ids.account_sid, "callSid": ids.call_sid}}


class SequenceStamper:
    """Adds ``sequenceNumber`` (a string, "1" at ``start``) and ``streamSid`` to each message."""

    def __init__(self, stream_sid: str) -> None:
        self.stream_sid = stream_sid
        self.last = 0

    def stamp(self, message: dict[str, Any]) -> dict[str, Any]:
        self.last += 1
        return {
            "event": message["event"],
            "sequenceNumber": str(self.last),
            **message,
            "streamSid": self.stream_sid,
        }


# --- server -> Twilio ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerMedia:
    ulaw: bytes


@dataclass(frozen=True, slots=True)
class ServerMark:
    name: str


@dataclass(frozen=True, slots=True)
class ServerClear:
    pass


ServerMessage = ServerMedia | ServerMark | ServerClear


class ProtocolViolation(TwilioProtocolError):
    """A server message Twilio would answer with a warning (and then ignore)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


def parse_server_message(frame: str | bytes, stream_sid: str) -> ServerMessage:
    """Judge one WebSocket frame from the server as Twilio would."""
    if isinstance(frame, bytes):
        raise ProtocolViolation(BINARY_FRAME, "binary frame (Twilio accepts JSON text frames only)")
    try:
        data = json.loads(frame)
    except ValueError as exc:
        raise ProtocolViolation(INVALID_MESSAGE, f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolViolation(INVALID_MESSAGE, "message is not a JSON object")
    event = data.get("event")
    if event not in ("media", "mark", "clear"):
        raise ProtocolViolation(INVALID_MESSAGE, f"unknown event {event!r}")
    if data.get("streamSid") != stream_sid:
        raise ProtocolViolation(
            INVALID_MESSAGE, f"{event}: streamSid {data.get('streamSid')!r} is not {stream_sid!r}"
        )
    if event == "clear":
        return ServerClear()
    body = data.get(event)
    if not isinstance(body, dict):
        raise ProtocolViolation(INVALID_MESSAGE, f"{event}: missing {event!r} object")
    if event == "mark":
        name = body.get("name")
        if not isinstance(name, str):
            raise ProtocolViolation(INVALID_MESSAGE, "mark: missing string mark.name")
        return ServerMark(name)
    payload = body.get("payload")
    if not isinstance(payload, str):
        raise ProtocolViolation(INVALID_MESSAGE, "media: missing string media.payload")
    try:
        ulaw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolViolation(INVALID_MESSAGE, "media: payload is not valid base64") from None
    return ServerMedia(ulaw)


def looks_like_wav_header(ulaw: bytes) -> bool:
    """A payload starting with a RIFF/WAVE header: Twilio would play the header as noise."""
    return ulaw[:4] == b"RIFF" and ulaw[8:12] == b"WAVE"
