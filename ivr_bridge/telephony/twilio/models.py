"""Twilio Media Streams wire models: what Twilio sends us, and the three frames we send back.

Inbound models are tolerant (unknown fields ignored, any ``version``, numbers accepted where
Twilio sends numeric strings) because Twilio adds fields without notice. Outbound models are
strict because Twilio reports our first mistake once per stream and then stays silent.

The parse path runs ~50 times a second per call, so it goes through one module-level
``TypeAdapter.validate_json`` (pydantic-core parses and validates in one pass) and the outbound
hot path builds JSON with ``json.dumps`` instead of instantiating models.
"""

from __future__ import annotations

import base64
import binascii
import json
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from ivr_bridge.errors import TwilioProtocolError

__all__ = [
    "ConnectedEvent",
    "DtmfEvent",
    "DtmfPayload",
    "InboundEvent",
    "MalformedFrame",
    "MarkEvent",
    "MarkPayload",
    "MediaEvent",
    "MediaFormat",
    "MediaPayload",
    "OutboundClear",
    "OutboundMark",
    "OutboundMarkPayload",
    "OutboundMedia",
    "OutboundMediaPayload",
    "StartEvent",
    "StartMetadata",
    "StopEvent",
    "StopPayload",
    "clear_json",
    "mark_json",
    "media_json",
    "parse_inbound",
]

DTMF_DIGITS = frozenset("0123456789*#")


class _Inbound(BaseModel):
    """Base for Twilio → us: camelCase on the wire, snake_case in code, unknown fields ignored."""

    model_config = ConfigDict(
        extra="ignore",
        alias_generator=to_camel,
        populate_by_name=True,
        # Twilio sends counters as numeric strings; Plivo-style integers are accepted too.
        coerce_numbers_to_str=True,
    )


class _Outbound(BaseModel):
    """Base for us → Twilio: any unexpected field is our bug, so it is refused."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
    )

    def to_json(self) -> str:
        """The exact text frame to send (camelCase keys, no whitespace)."""
        return self.model_dump_json(by_alias=True)


# ---------------------------------------------------------------- inbound (Twilio → us)


class ConnectedEvent(_Inbound):
    """First frame on the socket; carries no stream id and expects no reply."""

    event: Literal["connected"]
    protocol: str | None = None
    version: str | None = None


class MediaFormat(_Inbound):
    encoding: str
    sample_rate: int
    channels: int


MAX_PARAMETERS = 64
PARAMETER_MAX_CHARS = 500
"""Twilio's own limit: a ``<Parameter>``'s name and value together are under 500 characters."""


class StartMetadata(_Inbound):
    account_sid: str = Field(max_length=64)
    stream_sid: str = Field(max_length=64)
    call_sid: str = Field(min_length=1, max_length=64)
    tracks: list[str] = Field(max_length=4)
    custom_parameters: dict[str, str] = Field(default_factory=dict, max_length=MAX_PARAMETERS)
    media_format: MediaFormat

    @field_validator("custom_parameters")
    @classmethod
    def _within_twilio_limits(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if len(name) + len(text) >= PARAMETER_MAX_CHARS:
                raise ValueError(
                    f"parameter {name[:40]!r} is {len(name) + len(text)} characters with its "
                    f"name; Twilio sends under {PARAMETER_MAX_CHARS}"
                )
        return value


class StartEvent(_Inbound):
    event: Literal["start"]
    sequence_number: str
    stream_sid: str
    start: StartMetadata


MAX_COUNTER_DIGITS = 15
"""Fifteen digits of milliseconds is 31,000 years of call: anything longer is not Twilio."""


class MediaPayload(_Inbound):
    """One inbound audio frame. ``chunk``/``timestamp`` stay strings, as on the wire."""

    track: str
    chunk: str
    timestamp: str
    payload: str

    @field_validator("chunk", "timestamp")
    @classmethod
    def _numeric_string(cls, value: str) -> str:
        # str.isdigit alone accepts "²" and other Unicode digits that int() refuses; and a
        # number of thousands of digits would cost int() its time (and raise past 4,300).
        if not (value.isascii() and value.isdigit()) or len(value) > MAX_COUNTER_DIGITS:
            raise ValueError(f"must be a numeric string of at most {MAX_COUNTER_DIGITS} digits")
        return value

    @cached_property
    def chunk_number(self) -> int:
        """Media-only counter (starts at 1); gaps reveal frames Twilio dropped."""
        return int(self.chunk)

    @cached_property
    def timestamp_ms(self) -> int:
        """Position on the call's audio clock; use this, never arrival time."""
        return int(self.timestamp)

    def audio(self) -> bytes:
        """Raw 8 kHz µ-law bytes. Decoded lazily: most frames only feed the VAD once."""
        try:
            return binascii.a2b_base64(self.payload, strict_mode=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedFrame("media.payload is not valid base64", "validation") from exc


class MediaEvent(_Inbound):
    event: Literal["media"]
    sequence_number: str
    stream_sid: str
    media: MediaPayload


class DtmfPayload(_Inbound):
    track: str
    digit: str

    @field_validator("digit")
    @classmethod
    def _one_keypad_digit(cls, value: str) -> str:
        if value not in DTMF_DIGITS:
            raise ValueError("must be one of 0-9 * #")
        return value


class DtmfEvent(_Inbound):
    event: Literal["dtmf"]
    sequence_number: str
    stream_sid: str
    dtmf: DtmfPayload


class MarkPayload(_Inbound):
    name: str


class MarkEvent(_Inbound):
    """Echo of a mark we sent: played, or flushed by a ``clear`` (indistinguishable on the wire)."""

    event: Literal["mark"]
    sequence_number: str
    stream_sid: str
    mark: MarkPayload


class StopPayload(_Inbound):
    account_sid: str
    call_sid: str


class StopEvent(_Inbound):
    event: Literal["stop"]
    sequence_number: str
    stream_sid: str
    stop: StopPayload


InboundEvent = Annotated[
    ConnectedEvent | StartEvent | MediaEvent | DtmfEvent | MarkEvent | StopEvent,
    Field(discriminator="event"),
]

_INBOUND_ADAPTER: TypeAdapter[InboundEvent] = TypeAdapter(InboundEvent)


class MalformedFrame(TwilioProtocolError):
    """A frame we cannot use. ``reason`` is for logs, ``kind`` is a low-cardinality metric label."""

    def __init__(self, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


def _short(value: object, limit: int = 40) -> str:
    """Quote a peer-supplied value for a log line without letting it flood the log."""
    text = str(value)
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _describe(exc: ValidationError) -> MalformedFrame:
    """Turn pydantic's error list into one short reason plus a metric kind."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    err_type = first["type"]
    ctx: dict[str, Any] = first.get("ctx") or {}
    if err_type == "json_invalid":
        return MalformedFrame("invalid JSON", "json")
    if err_type == "union_tag_invalid":
        return MalformedFrame(f"unknown event {_short(ctx.get('tag', ''))}", "unknown_event")
    if err_type == "union_tag_not_found":
        return MalformedFrame("missing 'event' field", "validation")
    if not first["loc"]:
        return MalformedFrame("frame is not a JSON object", "validation")
    # loc[0] is the discriminator tag (the event name); the rest is the path inside the frame.
    path = ".".join(str(part) for part in first["loc"][1:]) or str(first["loc"][0])
    if err_type == "missing":
        reason = f"{path} is missing"
    elif err_type == "value_error":
        reason = f"{path} {ctx.get('error', first['msg'])}"
    else:
        reason = f"{path}: {first['msg']}"
    if len(reason) > 160:  # paths can contain peer-chosen keys (customParameters)
        reason = reason[:160] + "…"
    if len(errors) > 1:
        reason += f" (+{len(errors) - 1} more)"
    return MalformedFrame(reason, "validation")


def parse_inbound(raw: str | bytes) -> InboundEvent:
    """Parse one WebSocket frame from Twilio; anything unusable raises ``MalformedFrame``.

    ``bytes`` means a binary WebSocket frame, which Twilio never sends: it is refused unread.
    """
    if not isinstance(raw, str):
        raise MalformedFrame("binary frame (Twilio sends JSON text)", "binary")
    try:
        return _INBOUND_ADAPTER.validate_json(raw)
    except ValidationError as exc:
        raise _describe(exc) from None


# ---------------------------------------------------------------- outbound (us → Twilio)


def _is_wav_header(audio: bytes) -> bool:
    """RIFF....WAVE: a file header that Twilio would play as a burst of noise."""
    return audio[:4] == b"RIFF" and audio[8:12] == b"WAVE"


class OutboundMediaPayload(_Outbound):
    payload: str = Field(min_length=1)

    @field_validator("payload")
    @classmethod
    def _raw_ulaw_base64(cls, value: str) -> str:
        try:
            audio = binascii.a2b_base64(value, strict_mode=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("must be base64") from exc
        if _is_wav_header(audio):
            raise ValueError("must be raw µ-law, not a WAV file (header bytes play as noise)")
        return value


class OutboundMedia(_Outbound):
    event: Literal["media"] = "media"
    stream_sid: str = Field(min_length=1)
    media: OutboundMediaPayload


class OutboundMarkPayload(_Outbound):
    name: str = Field(min_length=1)


class OutboundMark(_Outbound):
    event: Literal["mark"] = "mark"
    stream_sid: str = Field(min_length=1)
    mark: OutboundMarkPayload


class OutboundClear(_Outbound):
    event: Literal["clear"] = "clear"
    stream_sid: str = Field(min_length=1)


# The fast serializers below must produce byte-for-byte what the models above produce
# (compact separators, UTF-8 not \u-escaped); tests/unit/test_twilio_models.py proves it.
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _require_stream_sid(stream_sid: str) -> None:
    if not stream_sid:
        raise ValueError("stream_sid is empty: Twilio rejects frames without the stream's id")


def media_json(stream_sid: str, ulaw: bytes) -> str:
    """A ``media`` frame carrying raw 8 kHz µ-law (hot path: no model instantiation)."""
    _require_stream_sid(stream_sid)
    if not ulaw:
        raise ValueError("media payload is empty")
    if _is_wav_header(ulaw):
        raise ValueError("media payload starts with a WAV header; send raw µ-law only")
    payload = base64.b64encode(ulaw).decode("ascii")
    return _dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


def mark_json(stream_sid: str, name: str) -> str:
    """A ``mark`` frame; Twilio echoes ``name`` once the audio sent before it has played."""
    _require_stream_sid(stream_sid)
    if not name:
        raise ValueError("mark name is empty")
    return _dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_json(stream_sid: str) -> str:
    """A ``clear`` frame: drops Twilio's buffered audio and echoes every pending mark."""
    _require_stream_sid(stream_sid)
    return _dumps({"event": "clear", "streamSid": stream_sid})
