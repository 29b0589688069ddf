"""Twilio Media Streams models: real wire shapes in, exact wire shapes out."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from pydantic import ValidationError

from ivr_bridge.telephony.twilio.models import (
    ConnectedEvent,
    DtmfEvent,
    MalformedFrame,
    MarkEvent,
    MediaEvent,
    OutboundClear,
    OutboundMark,
    OutboundMarkPayload,
    OutboundMedia,
    OutboundMediaPayload,
    StartEvent,
    StopEvent,
    clear_json,
    mark_json,
    media_json,
    parse_inbound,
)

STREAM_SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
CALL_SID = "CA6b9c4e7a1ee8c4e40f4ca7e4f6d1c0d2"
ACCOUNT_SID = "AC25e16e9a716a4a1786a7c83f58e30482"
WAV_HEADER = b"RIFF\x24\x08\x00\x00WAVEfmt "


def frame(**fields: Any) -> str:
    return json.dumps(fields)


def start_frame(**start_overrides: Any) -> dict[str, Any]:
    start: dict[str, Any] = {
        "accountSid": ACCOUNT_SID,
        "streamSid": STREAM_SID,
        "callSid": CALL_SID,
        "tracks": ["inbound"],
        "customParameters": {"flow": "main", "caller": "+14155550100"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    start.update(start_overrides)
    return {"event": "start", "sequenceNumber": "1", "start": start, "streamSid": STREAM_SID}


def media_frame(chunk: Any = "2", timestamp: Any = "140", payload: str | None = None) -> str:
    if payload is None:
        payload = base64.b64encode(bytes(range(160))).decode()
    media = {"track": "inbound", "chunk": chunk, "timestamp": timestamp, "payload": payload}
    return frame(event="media", sequenceNumber="3", media=media, streamSid=STREAM_SID)


def malformed(raw: str | bytes) -> MalformedFrame:
    with pytest.raises(MalformedFrame) as info:
        parse_inbound(raw)
    return info.value


# ------------------------------------------------------------------ inbound


@pytest.mark.parametrize("version", ["1.0.0", "0.2.0"])
def test_connected_accepts_any_version(version: str) -> None:
    event = parse_inbound(frame(event="connected", protocol="Call", version=version))
    assert isinstance(event, ConnectedEvent)
    assert event.protocol == "Call"
    assert event.version == version


def test_start_reads_string_sequence_and_integer_media_format() -> None:
    event = parse_inbound(json.dumps(start_frame()))
    assert isinstance(event, StartEvent)
    assert event.sequence_number == "1"
    assert event.stream_sid == STREAM_SID
    assert event.start.call_sid == CALL_SID
    assert event.start.account_sid == ACCOUNT_SID
    assert event.start.tracks == ["inbound"]
    assert event.start.custom_parameters == {"flow": "main", "caller": "+14155550100"}
    assert event.start.media_format.encoding == "audio/x-mulaw"
    assert event.start.media_format.sample_rate == 8000
    assert event.start.media_format.channels == 1


def test_start_without_custom_parameters_defaults_to_empty() -> None:
    raw = start_frame()
    del raw["start"]["customParameters"]
    event = parse_inbound(json.dumps(raw))
    assert isinstance(event, StartEvent)
    assert event.start.custom_parameters == {}


def test_media_keeps_wire_strings_and_exposes_numbers_and_audio() -> None:
    event = parse_inbound(media_frame(chunk="2", timestamp="140"))
    assert isinstance(event, MediaEvent)
    assert event.media.chunk == "2"
    assert event.media.timestamp == "140"
    assert event.media.chunk_number == 2
    assert event.media.timestamp_ms == 140
    assert event.media.track == "inbound"
    assert event.media.audio() == bytes(range(160))


def test_media_tolerates_integer_counters() -> None:
    event = parse_inbound(media_frame(chunk=7, timestamp=260))
    assert isinstance(event, MediaEvent)
    assert (event.media.chunk, event.media.timestamp_ms) == ("7", 260)


def test_media_with_invalid_base64_fails_when_decoded() -> None:
    event = parse_inbound(media_frame(payload="not base64!"))
    assert isinstance(event, MediaEvent)
    with pytest.raises(MalformedFrame) as info:
        event.media.audio()
    assert info.value.kind == "validation"
    assert "payload" in info.value.reason


def test_dtmf_uses_inbound_track() -> None:
    raw = frame(
        event="dtmf",
        streamSid=STREAM_SID,
        sequenceNumber="5",
        dtmf={"track": "inbound_track", "digit": "#"},
    )
    event = parse_inbound(raw)
    assert isinstance(event, DtmfEvent)
    assert event.dtmf.track == "inbound_track"
    assert event.dtmf.digit == "#"


@pytest.mark.parametrize("digit", ["A", "", "12", "x"])
def test_dtmf_outside_keypad_is_malformed(digit: str) -> None:
    raw = frame(
        event="dtmf",
        streamSid=STREAM_SID,
        sequenceNumber="5",
        dtmf={"track": "inbound_track", "digit": digit},
    )
    error = malformed(raw)
    assert error.kind == "validation"
    assert error.reason.startswith("dtmf.digit")


def test_mark_echo() -> None:
    raw = frame(event="mark", sequenceNumber="9", streamSid=STREAM_SID, mark={"name": "g2-5"})
    event = parse_inbound(raw)
    assert isinstance(event, MarkEvent)
    assert event.mark.name == "g2-5"
    assert event.sequence_number == "9"


def test_stop() -> None:
    raw = frame(
        event="stop",
        sequenceNumber="41",
        streamSid=STREAM_SID,
        stop={"accountSid": ACCOUNT_SID, "callSid": CALL_SID},
    )
    event = parse_inbound(raw)
    assert isinstance(event, StopEvent)
    assert event.stop.call_sid == CALL_SID
    assert event.stop.account_sid == ACCOUNT_SID


def test_unknown_fields_are_ignored_everywhere() -> None:
    raw = start_frame(futureField={"x": 1})
    raw["start"]["mediaFormat"]["bitDepth"] = 8
    raw["newTopLevel"] = True
    event = parse_inbound(json.dumps(raw))
    assert isinstance(event, StartEvent)
    assert event.start.media_format.sample_rate == 8000
    assert not hasattr(event, "newTopLevel")


def test_models_also_accept_snake_case_names() -> None:
    event = MediaEvent.model_validate(
        {
            "event": "media",
            "sequence_number": "3",
            "stream_sid": STREAM_SID,
            "media": {"track": "inbound", "chunk": "1", "timestamp": "120", "payload": "//8="},
        }
    )
    assert event.media.timestamp_ms == 120


# ------------------------------------------------------------------ malformed


@pytest.mark.parametrize("raw", ["{not json", "", '{"event":"media",'])
def test_bad_json(raw: str) -> None:
    error = malformed(raw)
    assert (error.kind, error.reason) == ("json", "invalid JSON")


def test_unknown_event_is_named() -> None:
    error = malformed(frame(event="foo", streamSid=STREAM_SID))
    assert error.kind == "unknown_event"
    assert error.reason == "unknown event 'foo'"


def test_closed_is_not_an_event_twilio_sends() -> None:
    assert malformed(frame(event="closed")).kind == "unknown_event"


def test_huge_unknown_event_name_is_truncated_in_reason() -> None:
    error = malformed(frame(event="x" * 10_000))
    assert error.kind == "unknown_event"
    assert len(error.reason) < 80


def test_missing_event_field() -> None:
    error = malformed(frame(streamSid=STREAM_SID))
    assert (error.kind, error.reason) == ("validation", "missing 'event' field")


@pytest.mark.parametrize("raw", ["[1, 2]", '"media"', "42", "null"])
def test_json_that_is_not_an_object(raw: str) -> None:
    error = malformed(raw)
    assert (error.kind, error.reason) == ("validation", "frame is not a JSON object")


def test_missing_nested_field_is_named_by_its_wire_path() -> None:
    raw = start_frame()
    del raw["start"]["mediaFormat"]["sampleRate"]
    error = malformed(json.dumps(raw))
    assert error.kind == "validation"
    assert error.reason == "start.mediaFormat.sampleRate is missing"


def test_media_without_stream_sid() -> None:
    raw = json.loads(media_frame())
    del raw["streamSid"]
    error = malformed(json.dumps(raw))
    assert (error.kind, error.reason) == ("validation", "streamSid is missing")


@pytest.mark.parametrize("timestamp", ["abc", "12.5", "-20", "", "²"])
def test_non_numeric_timestamp(timestamp: str) -> None:
    error = malformed(media_frame(timestamp=timestamp))
    assert error.kind == "validation"
    assert error.reason == "media.timestamp must be a numeric string of at most 15 digits"


def test_non_numeric_chunk() -> None:
    error = malformed(media_frame(chunk="two"))
    assert error.reason == "media.chunk must be a numeric string of at most 15 digits"


def test_several_errors_are_counted_not_listed() -> None:
    raw = frame(event="stop", sequenceNumber="4", streamSid=STREAM_SID, stop={})
    error = malformed(raw)
    assert error.kind == "validation"
    assert error.reason == "stop.accountSid is missing (+1 more)"


@pytest.mark.parametrize("raw", [b'{"event":"connected"}', b"\x00\x01\xff"])
def test_binary_frames_are_refused(raw: bytes) -> None:
    error = malformed(raw)
    assert error.kind == "binary"


# ------------------------------------------------------------------ outbound


def test_outbound_media_exact_shape() -> None:
    ulaw = b"\xff\x7f" * 80
    wire = json.loads(media_json(STREAM_SID, ulaw))
    assert wire == {
        "event": "media",
        "streamSid": STREAM_SID,
        "media": {"payload": base64.b64encode(ulaw).decode()},
    }
    assert list(wire) == ["event", "streamSid", "media"]


def test_outbound_mark_and_clear_exact_shape() -> None:
    assert json.loads(mark_json(STREAM_SID, "g1-3")) == {
        "event": "mark",
        "streamSid": STREAM_SID,
        "mark": {"name": "g1-3"},
    }
    assert json.loads(clear_json(STREAM_SID)) == {"event": "clear", "streamSid": STREAM_SID}


@pytest.mark.parametrize("ulaw", [b"\xff", bytes(range(256)) * 3, b"RIFF but not a header"])
def test_fast_media_equals_model(ulaw: bytes) -> None:
    payload = base64.b64encode(ulaw).decode()
    model = OutboundMedia(stream_sid=STREAM_SID, media=OutboundMediaPayload(payload=payload))
    assert media_json(STREAM_SID, ulaw) == model.to_json()


@pytest.mark.parametrize("name", ["g0-1", 'quote" back\\slash', "näme-✓-😀", "line\nbreak\x01"])
def test_fast_mark_equals_model(name: str) -> None:
    model = OutboundMark(stream_sid=STREAM_SID, mark=OutboundMarkPayload(name=name))
    assert mark_json(STREAM_SID, name) == model.to_json()
    assert json.loads(mark_json(STREAM_SID, name))["mark"]["name"] == name


def test_fast_clear_equals_model() -> None:
    assert clear_json(STREAM_SID) == OutboundClear(stream_sid=STREAM_SID).to_json()


def test_fast_serializers_refuse_empty_stream_sid() -> None:
    with pytest.raises(ValueError, match="stream_sid"):
        media_json("", b"\xff")
    with pytest.raises(ValueError, match="stream_sid"):
        mark_json("", "m")
    with pytest.raises(ValueError, match="stream_sid"):
        clear_json("")


def test_fast_serializers_refuse_empty_payload_and_mark_name() -> None:
    with pytest.raises(ValueError, match="empty"):
        media_json(STREAM_SID, b"")
    with pytest.raises(ValueError, match="empty"):
        mark_json(STREAM_SID, "")


def test_fast_media_refuses_wav_header() -> None:
    with pytest.raises(ValueError, match="WAV"):
        media_json(STREAM_SID, WAV_HEADER + b"\xff" * 160)


def test_models_refuse_what_twilio_would_reject() -> None:
    wav_b64 = base64.b64encode(WAV_HEADER + b"\xff" * 16).decode()
    with pytest.raises(ValidationError, match="WAV"):
        OutboundMedia.model_validate({"streamSid": STREAM_SID, "media": {"payload": wav_b64}})
    with pytest.raises(ValidationError):
        OutboundMedia.model_validate({"streamSid": STREAM_SID, "media": {"payload": ""}})
    with pytest.raises(ValidationError):
        OutboundMedia.model_validate(
            {"streamSid": STREAM_SID, "media": {"payload": "%%% not base64"}}
        )
    with pytest.raises(ValidationError):
        OutboundMedia.model_validate({"streamSid": "", "media": {"payload": "/w=="}})
    with pytest.raises(ValidationError):
        OutboundMark.model_validate({"streamSid": STREAM_SID, "mark": {"name": ""}})
    with pytest.raises(ValidationError):
        OutboundClear(stream_sid=STREAM_SID, track="inbound")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        OutboundClear.model_validate({"event": "stop", "streamSid": STREAM_SID})


# ------------------------------------------------------------------ benchmarks
# Run with `pytest --benchmark-enable tests/unit/test_twilio_models.py -k benchmark`;
# by default (--benchmark-disable) each runs once as a plain correctness test.


def test_benchmark_parse_media_frame(benchmark: Any) -> None:
    raw = media_frame(chunk="41", timestamp="920")
    event = benchmark(parse_inbound, raw)
    assert isinstance(event, MediaEvent)
    assert event.media.timestamp_ms == 920


def test_benchmark_media_json(benchmark: Any) -> None:
    ulaw = bytes(range(256)) * 2 + b"\xff" * 128  # 80 ms of audio
    text = benchmark(media_json, STREAM_SID, ulaw)
    assert base64.b64decode(json.loads(text)["media"]["payload"]) == ulaw


def test_a_timestamp_of_thousands_of_digits_is_a_malformed_frame_not_a_crash() -> None:
    frame = json.dumps(
        {
            "event": "media",
            "sequenceNumber": "3",
            "streamSid": "MZ1",
            "media": {"track": "inbound", "chunk": "2", "timestamp": "9" * 4301, "payload": ""},
        }
    )
    with pytest.raises(MalformedFrame, match="at most 15 digits"):
        parse_inbound(frame)
