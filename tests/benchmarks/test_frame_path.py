"""Micro-benchmarks of the per-frame hot path, next to its floor.

Run once as plain tests by default (addopts has ``--benchmark-disable``); time them with
``pytest tests/benchmarks --benchmark-enable``. The floor is what any bridge must do per 20 ms
inbound frame: parse the JSON text and base64-decode 160 bytes; everything above it is ours.
"""

from __future__ import annotations

import base64
import json
import math
import struct

import pytest

from ivr_bridge.audio.codec import pcm16_to_ulaw, ulaw_to_pcm16
from ivr_bridge.audio.silero import SileroPool, SpeechConfirmer
from ivr_bridge.audio.vad import VoiceActivityDetector
from ivr_bridge.telephony.twilio.models import MediaEvent, mark_json, media_json, parse_inbound

STREAM_SID = "MZ" + "0" * 32
SILENCE = b"\xff" * 160


def _tone_frame() -> bytes:
    """20 ms of a loud 440 Hz tone: voiced enough to reach webrtcvad past the energy floor."""
    pcm = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(160)
    )
    return pcm16_to_ulaw(pcm)


def _inbound(ulaw: bytes, n: int = 1234) -> str:
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": str(n + 2),
            "media": {
                "track": "inbound",
                "chunk": str(n),
                "timestamp": str(n * 20),
                "payload": base64.b64encode(ulaw).decode(),
            },
            "streamSid": STREAM_SID,
        }
    )


@pytest.fixture(params=["silence", "speech"])
def frame(request: pytest.FixtureRequest) -> tuple[str, bytes]:
    ulaw = SILENCE if request.param == "silence" else _tone_frame()
    return _inbound(ulaw), ulaw


def test_floor_json_and_base64(benchmark, frame: tuple[str, bytes]) -> None:
    raw, ulaw = frame

    def floor() -> bytes:
        return base64.b64decode(json.loads(raw)["media"]["payload"])

    assert benchmark(floor) == ulaw


def test_parse_and_decode(benchmark, frame: tuple[str, bytes]) -> None:
    raw, ulaw = frame

    def parse() -> bytes:
        event = parse_inbound(raw)
        assert isinstance(event, MediaEvent)
        return event.media.audio()

    assert benchmark(parse) == ulaw


def test_parse_decode_and_vad(benchmark, frame: tuple[str, bytes]) -> None:
    raw, ulaw = frame
    vad = VoiceActivityDetector()

    def whole_inbound_frame() -> bool:
        event = parse_inbound(raw)
        assert isinstance(event, MediaEvent)
        return vad.is_speech(event.media.audio())

    assert benchmark(whole_inbound_frame) is (ulaw != SILENCE)


def test_judged_frame_vad_and_silero(benchmark) -> None:
    """A frame of an onset over an audible prompt: webrtcvad, then silero (a 256-sample window
    every 1.6 frames). Only such frames pay for silero; the goal is ≤ ~100 µs."""
    ulaw = _tone_frame()
    vad = VoiceActivityDetector()
    confirmer = SpeechConfirmer(SileroPool())
    assert confirmer.start([])

    def judged() -> float:
        vad.is_speech(ulaw)
        return confirmer.feed(ulaw_to_pcm16(ulaw))

    assert 0.0 <= benchmark(judged) <= 1.0
    confirmer.stop()


def test_floor_outbound_json_and_base64(benchmark) -> None:
    audio = _tone_frame() * 5  # one 100 ms playback chunk

    def floor() -> str:
        payload = base64.b64encode(audio).decode()
        return json.dumps(
            {"event": "media", "streamSid": STREAM_SID, "media": {"payload": payload}}
        )

    assert json.loads(benchmark(floor))["media"]["payload"]


def test_outbound_media_and_mark(benchmark) -> None:
    audio = _tone_frame() * 5

    def build() -> tuple[str, str]:
        return media_json(STREAM_SID, audio), mark_json(STREAM_SID, "ivr.0.17")

    media, mark = benchmark(build)
    assert base64.b64decode(json.loads(media)["media"]["payload"]) == audio
    assert json.loads(mark) == {
        "event": "mark",
        "streamSid": STREAM_SID,
        "mark": {"name": "ivr.0.17"},
    }
