"""Recorded prompts for ``say: {audio: file.wav}`` steps, read once when the flow loads."""

from __future__ import annotations

import wave
from pathlib import Path

from ivr_bridge.audio.codec import SAMPLE_RATE, pcm16_to_ulaw, resample_pcm16


def load_prompt_audio(base_dir: Path | None, name: str) -> bytes:
    """A prompt WAV as 8 kHz µ-law; it must sit beside (or below) the flow file."""
    if base_dir is None:
        raise ValueError("audio files need a flow loaded from a file")
    base = base_dir.resolve()
    path = (base / name).resolve()
    if base not in path.parents:
        raise ValueError(f"audio file {name!r} must be inside {base_dir}")
    try:
        with wave.open(str(path), "rb") as wav:
            width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise ValueError(f"cannot read audio file {name!r} as a PCM WAV: {exc}") from None
    if width != 2 or channels != 1:
        raise ValueError(f"audio file {name!r} must be 16-bit mono PCM WAV")
    pcm, _ = resample_pcm16(frames, rate, SAMPLE_RATE)
    return pcm16_to_ulaw(pcm)
