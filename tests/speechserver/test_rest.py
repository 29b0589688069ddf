"""REST conformance through the official SDK: voices, speech.generate, generate_detailed."""

from __future__ import annotations

import base64

import lmnt
import pytest
from lmnt import AsyncLmnt
from speech_test_helpers import parse_wav_header

from ivr_bridge.speechserver.app import SpeechServerConfig, start_speech_server


async def test_voices_list_and_retrieve(lmnt_client: AsyncLmnt) -> None:
    voices = await lmnt_client.voices.list()
    ids = [v.id for v in voices]
    assert "leah" in ids and len(ids) >= 4
    assert {v.gender for v in voices} >= {"female", "male"}
    assert all(v.owner == "system" and v.state == "ready" for v in voices)
    assert voices[0].request_id.startswith("req_")  # from the request-id header
    leah = await lmnt_client.voices.retrieve("leah")
    assert leah.name == "Leah"
    assert await lmnt_client.voices.list(owner="me") == []


async def test_unknown_voice_is_not_found(lmnt_client: AsyncLmnt) -> None:
    with pytest.raises(lmnt.NotFoundError) as caught:
        await lmnt_client.voices.retrieve("nobody")
    assert caught.value.type == "not_found_error"
    assert caught.value.request_id
    with pytest.raises(lmnt.NotFoundError):
        await lmnt_client.speech.generate(text="Hi.", voice="nobody")


@pytest.mark.parametrize(
    ("fmt", "sample_rate", "bytes_per_sample"),
    [("pcm_s16le", 16000, 2), ("pcm_f32le", 24000, 4), ("ulaw", 8000, 1), ("wav", 8000, 2)],
)
async def test_generate_streams_audio(
    lmnt_client: AsyncLmnt, fmt: str, sample_rate: int, bytes_per_sample: int
) -> None:
    response = await lmnt_client.speech.generate(
        text="Your balance is twelve dollars. Goodbye.",
        voice="ava",
        format=fmt,
        sample_rate=sample_rate,
    )
    audio = await response.read()
    start = 0
    if fmt in ("ulaw", "wav"):
        header, start = parse_wav_header(audio)
        assert header["format_tag"] == (7 if fmt == "ulaw" else 1)
        assert header["sample_rate"] == sample_rate
    seconds = (len(audio) - start) / bytes_per_sample / sample_rate
    assert 1.5 < seconds < 6


async def test_generate_detailed_returns_base64_audio_and_timestamps(
    lmnt_client: AsyncLmnt,
) -> None:
    result = await lmnt_client.speech.generate_detailed(
        text="Hello world. Goodbye now.",
        voice="morgan",
        format="pcm_s16le",
        sample_rate=8000,
        return_timestamps=True,
    )
    audio = base64.b64decode(result.audio)
    assert [t.text for t in result.timestamps] == ["Hello", "world", "Goodbye", "now"]
    starts = [t.start for t in result.timestamps]
    assert starts == sorted(starts)  # measured from the start of the whole clip
    last = result.timestamps[-1]
    assert last.start + last.duration == pytest.approx(len(audio) / 2 / 8000, rel=0.1)


async def test_unsupported_format_is_invalid_request(lmnt_client: AsyncLmnt) -> None:
    with pytest.raises(lmnt.BadRequestError) as caught:
        await lmnt_client.speech.generate(text="Hi.", voice="leah", format="mp3")
    assert caught.value.type == "invalid_request_error"


async def test_rest_requires_a_configured_key() -> None:
    server = await start_speech_server(SpeechServerConfig(api_keys=["k1", "k2"]))
    try:
        async with AsyncLmnt(api_key="k2", base_url=server.base_url, max_retries=0) as good:
            assert await good.voices.list()
        async with AsyncLmnt(api_key="wrong", base_url=server.base_url, max_retries=0) as bad:
            with pytest.raises(lmnt.AuthenticationError) as caught:
                await bad.voices.list()
            assert caught.value.type == "authentication_error"
    finally:
        await server.stop()
