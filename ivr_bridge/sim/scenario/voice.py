"""The caller's own audio: synthesised speech (a voice distinct from the bot's) and WAV files.

Speech comes from ``caller_voice`` (espeak-ng in a helper process, a pristine state for every
phrase), so a phrase sounds the same in every run; the helper starts only when a script actually
says something. Phrases are cached because a load run says the same lines thousands of times.
"""

from __future__ import annotations

import asyncio
import wave
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path

from ivr_bridge.audio.codec import SAMPLE_RATE, pcm16_to_ulaw, resample_pcm16
from ivr_bridge.errors import SimulationError
from ivr_bridge.sim.scenario import caller_voice

CallerSpeech = Callable[[str, str, float], Awaitable[bytes]]
"""(text, voice id, speaking rate) → 8 kHz µ-law of the caller saying it."""

_CACHE_SIZE = 256
_cache: OrderedDict[tuple[str, str, float], bytes] = OrderedDict()


async def synthesize_caller_speech(text: str, voice: str, rate: float = 1.0) -> bytes:
    """Speak ``text`` with the project's espeak-ng synthesizer, as 8 kHz µ-law."""
    key = (text, voice, rate)
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    ulaw = pcm16_to_ulaw(await caller_voice.synthesize(text, voice, SAMPLE_RATE, rate))
    _cache[key] = ulaw
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return ulaw


class AudioFileError(SimulationError, ValueError):
    """A ``play`` file the phone line cannot carry."""


def _read_wav_as_ulaw(path: Path) -> bytes:
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError, OSError) as exc:
        raise AudioFileError(f"{path}: cannot read as PCM WAV: {exc}") from None
    if width != 2:
        raise AudioFileError(f"{path}: {8 * width}-bit samples; only 16-bit PCM WAV is supported")
    if channels > 1:
        # Keep the first channel: a phone line is mono.
        step = 2 * channels
        frames = b"".join(frames[i : i + 2] for i in range(0, len(frames), step))
    pcm, _ = resample_pcm16(frames, rate, SAMPLE_RATE)
    return pcm16_to_ulaw(pcm)


async def load_wav_as_ulaw(path: Path) -> bytes:
    """A 16-bit PCM WAV (any rate, first channel) as 8 kHz µ-law, read off the event loop."""
    return await asyncio.to_thread(_read_wav_as_ulaw, path)
