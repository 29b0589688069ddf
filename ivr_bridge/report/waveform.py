"""Min-max envelopes of telephone audio, one column per timeline pixel.

Computed with ``audioop`` (C) a column at a time, so a half-hour recording costs milliseconds;
callers that hold a call's audio in an event loop run this in a thread all the same.
"""

from __future__ import annotations

import io
import wave

from ivr_bridge.audio.codec import ULAW_BYTES_PER_MS, audioop
from ivr_bridge.report.view import Peaks

COLUMNS = 1000
"""The timeline's width in pixels (``timeline.WIDTH``)."""


def samples_per_column(duration_ms: float, sample_rate: int = 8000) -> int:
    return max(1, int(duration_ms * sample_rate / 1000) // COLUMNS)


def pcm16_peaks(pcm: bytes, per_column: int) -> Peaks:
    """(low, high) in -1..1 for each ``per_column`` samples of mono 16-bit PCM."""
    samples = len(pcm) // 2
    out = []
    for column in range(min(COLUMNS, samples // per_column)):
        low, high = audioop.minmax(pcm[column * per_column * 2 : (column + 1) * per_column * 2], 2)
        out.append((low / 32768, high / 32768))
    return tuple(out)


def ulaw_peaks(ulaw: bytes, duration_ms: float) -> Peaks:
    if not ulaw:
        return ()
    per = samples_per_column(duration_ms, ULAW_BYTES_PER_MS * 1000)
    return pcm16_peaks(audioop.ulaw2lin(ulaw, 2), per)


def stereo_wav_peaks(wav: bytes, duration_ms: float) -> tuple[Peaks, Peaks]:
    """Left and right envelopes of a 16-bit stereo (or mono: both the same) WAV; empty when the
    bytes are not a WAV this can read (a page still shows the rest of the call)."""
    try:
        with wave.open(io.BytesIO(wav), "rb") as source:
            channels, width, rate = (
                source.getnchannels(),
                source.getsampwidth(),
                source.getframerate(),
            )
            frames = source.readframes(source.getnframes())
    except (wave.Error, EOFError, ValueError):
        return (), ()
    if width != 2 or channels not in (1, 2) or not frames:
        return (), ()
    per = samples_per_column(duration_ms, rate)
    if channels == 1:
        mono = pcm16_peaks(frames, per)
        return mono, mono
    left = pcm16_peaks(audioop.tomono(frames, 2, 1, 0), per)
    right = pcm16_peaks(audioop.tomono(frames, 2, 0, 1), per)
    return left, right
