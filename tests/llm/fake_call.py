"""Fakes the LLM dialog tests need beyond the shipped call fake (``ivr_bridge.call.testing``)."""

from __future__ import annotations

from ivr_bridge.recognition.models import Transcription


class EchoTranscriber:
    """ "Hears" an utterance made by ``ivr_bridge.call.testing.utterance`` (its audio is text)."""

    engine = "echo"

    async def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcription:
        assert sample_rate == 8000
        return Transcription(pcm16.decode(), 0.95, self.engine, 1.0)
