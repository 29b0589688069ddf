"""Deepgram live adapter against the stand-in, and the caller-turn recogniser chooser."""

from __future__ import annotations

import math
import struct

import pytest

from ivr_bridge.audio.codec import pcm16_to_ulaw
from ivr_bridge.recognition.models import RecognizerUnavailable, Transcription
from ivr_bridge.stt import DeepgramError, DeepgramTranscriber, SttSettings, get_turn_transcriber
from tests.llm.standin_deepgram import DeepgramStandIn


def tone(ms: int, rate: int = 8000) -> bytes:
    n = rate * ms // 1000
    return b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(n)
    )


async def test_utterance_goes_as_mulaw_8k_and_the_final_transcript_comes_back(
    deepgram: DeepgramStandIn,
) -> None:
    deepgram.transcripts.append("I'd like to check my balance.")
    pcm = tone(700)
    result = await DeepgramTranscriber("dg-test-key", url=deepgram.url).transcribe(pcm, 8000)
    assert result.text == "I'd like to check my balance."
    assert result.engine == "deepgram:nova-3" and result.confidence > 0.9
    assert deepgram.audio == [pcm16_to_ulaw(pcm)]
    query = deepgram.queries[0]
    assert query["encoding"] == ["mulaw"] and query["sample_rate"] == ["8000"]


async def test_silence_gives_an_empty_transcript(deepgram: DeepgramStandIn) -> None:
    result = await DeepgramTranscriber("dg-test-key", url=deepgram.url).transcribe(
        b"\0\0" * 800, 8000
    )
    assert result.text == ""


async def test_a_wrong_key_is_a_clear_error_without_the_key(deepgram: DeepgramStandIn) -> None:
    with pytest.raises(DeepgramError) as caught:
        await DeepgramTranscriber("wrong-key-123", url=deepgram.url).transcribe(tone(100), 8000)
    assert "401" in str(caught.value) and "DEEPGRAM_API_KEY" in str(caught.value)
    assert "wrong-key-123" not in str(caught.value)


class _Whisper:
    async def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcription:
        return Transcription("", 0.0, "whisper", 0.0)


def _no_whisper() -> _Whisper:
    raise RecognizerUnavailable("free-form transcription needs faster-whisper")


def test_auto_prefers_deepgram_when_a_key_is_set() -> None:
    settings = SttSettings(stt="auto", deepgram_api_key="k")
    assert isinstance(get_turn_transcriber(settings, whisper=_Whisper), DeepgramTranscriber)


def test_auto_falls_back_to_whisper_without_a_key() -> None:
    settings = SttSettings(stt="auto", deepgram_api_key=None)
    assert isinstance(get_turn_transcriber(settings, whisper=_Whisper), _Whisper)


def test_nothing_available_names_both_fixes() -> None:
    with pytest.raises(RecognizerUnavailable) as caught:
        get_turn_transcriber(SttSettings(stt="auto", deepgram_api_key=None), whisper=_no_whisper)
    assert "faster-whisper" in str(caught.value) and "DEEPGRAM_API_KEY" in str(caught.value)


def test_deepgram_without_a_key_says_so() -> None:
    with pytest.raises(RecognizerUnavailable, match="DEEPGRAM_API_KEY"):
        get_turn_transcriber(SttSettings(stt="deepgram", deepgram_api_key=None))
