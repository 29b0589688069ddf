"""The caller's ears: speech-to-text of each bot utterance as the caller heard it.

``bot_said`` checks need words, and the only honest source for any agent is the audio that
reached the line (8 kHz µ-law, after clears): the embedded faster-whisper ``tiny.en``, loaded from
its wheel, never downloaded. No prompt is given on purpose: priming the recogniser with the
phrases a check expects would let it hear them in a prompt that never said them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ivr_bridge.recognition import RecognizerUnavailable, get_transcriber

BotTranscriber = Callable[[bytes, int], Awaitable[str]]


def load_bot_transcriber() -> BotTranscriber:
    """Whisper as a ``(pcm16, sample_rate) -> text`` callable.

    Raises ``RecognizerUnavailable`` (naming the fix) when it cannot run here. Blocking (it may
    import faster-whisper): call it in a thread."""
    transcriber = get_transcriber()

    async def transcribe(pcm16: bytes, sample_rate: int) -> str:
        return (await transcriber.transcribe(pcm16, sample_rate)).text

    return transcribe


async def bot_transcriber_or_note() -> BotTranscriber | None:
    """The transcriber, or None after printing why bot speech will go untranscribed."""
    try:
        return await asyncio.to_thread(load_bot_transcriber)
    except RecognizerUnavailable as exc:
        print(f"note: bot speech will not be transcribed ({exc})")
        return None
