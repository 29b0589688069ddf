"""The caller's phone line as a persona has it: background noise, lost packets, jitter, clipping.

Real callers ring from streets and kitchens over mobile networks; an agent that only works for
a clean studio voice fails them. Each impairment works on the caller's 20 ms frames as they
leave the caller, deterministically from a seed, so a repeat with the same seed is the same call
and a different seed is a different one:

- **noise** at a signal-to-noise ratio against the persona's own speech level (white, or pink:
  the softer hiss of a street or a fan), on every frame, speech or not;
- **loss**: a share of frames replaced by silence, as Twilio fills what RTP lost;
- **clipping**: samples cut at a level below full scale (a hot microphone);
- **jitter**: frames held back by up to N ms, released in order, as a bursty network delivers
  them (the timestamps stay those of the caller's clock).

The recording keeps what the caller's mouth said (the clean audio), so a report shows what the
persona meant; what the agent got is what this module made of it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ivr_bridge.audio.codec import audioop  # the one guarded import (3.11-3.13)

FRAME_SAMPLES = 160
RATE = 8000
PINK_FLOOR_HZ = 100.0


class NoiseSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["white", "pink"] = "pink"
    snr_db: float = Field(ge=-10, le=60)
    """Speech level over noise level (20 dB: clean enough; 10 dB: recognition suffers)."""


class LineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    loss_pct: float = Field(default=0.0, ge=0, le=50)
    """Share of the caller's frames lost (replaced by silence)."""
    jitter_ms: int = Field(default=0, ge=0, le=500)
    """Each frame held back by up to this long before it is sent (order kept)."""
    clip_dbfs: float | None = Field(default=None, ge=-30, lt=0)
    """Samples beyond this level (dB below full scale) are clipped."""

    @property
    def impaired(self) -> bool:
        return bool(self.loss_pct or self.jitter_ms or self.clip_dbfs is not None)


NOISE_LOOP_S = 30
"""Seconds of noise made per call and looped: long enough not to be heard repeating."""


@dataclass(slots=True)
class LineConditions:
    """Applies a persona's noise and line settings to each outgoing frame.

    The noise is made once per call (numpy, from the seed) and each frame takes its next 20 ms:
    the per-frame work is a slice and a sample-wise add, 50 times a second per call."""

    noise: NoiseSettings | None
    line: LineSettings
    seed: int
    speech_rms: float = 3000.0
    """The persona's speech level (16-bit RMS), which the noise's SNR is measured against."""
    frames_lost: int = 0
    _rng: random.Random = field(init=False)
    _noise: bytes = field(init=False, default=b"")
    _at: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        if self.noise is not None:
            self._noise = _make_noise(self.noise, self.speech_rms, self.seed)

    @property
    def active(self) -> bool:
        return self.noise is not None or self.line.impaired

    def frame(self, ulaw: bytes) -> bytes:
        """The frame the agent receives for what the caller's mouth produced."""
        if not self.active:
            return ulaw
        if self.line.loss_pct and self._rng.random() * 100 < self.line.loss_pct:
            self.frames_lost += 1
            return b"\xff" * len(ulaw)
        pcm = audioop.ulaw2lin(ulaw, 2)
        if self._noise:
            pcm = audioop.add(pcm, self._next_noise(len(pcm)), 2)
        if self.line.clip_dbfs is not None:
            pcm = _clip(pcm, round(32767 * 10 ** (self.line.clip_dbfs / 20)))
        return audioop.lin2ulaw(pcm, 2)

    def delay_ms(self) -> float:
        """How long the next frame is held back (0 without jitter)."""
        return self._rng.uniform(0, self.line.jitter_ms) if self.line.jitter_ms else 0.0

    def _next_noise(self, n_bytes: int) -> bytes:
        start = self._at
        self._at = (start + n_bytes) % len(self._noise)
        chunk = self._noise[start : start + n_bytes]
        if len(chunk) < n_bytes:  # wrapped around the loop
            chunk += self._noise[: n_bytes - len(chunk)]
        return chunk


def _make_noise(settings: NoiseSettings, speech_rms: float, seed: int) -> bytes:
    """``NOISE_LOOP_S`` of 16-bit noise at the SNR below ``speech_rms``; pink is white shaped by
    1/sqrt(f) in the frequency domain (equal energy per octave) from ``PINK_FLOOR_HZ`` up."""
    samples = NOISE_LOOP_S * RATE
    values = np.random.default_rng(seed).standard_normal(samples)
    if settings.kind == "pink":
        spectrum = np.fft.rfft(values)
        freqs = np.fft.rfftfreq(samples, 1 / RATE)
        # A phone line carries nothing much below ~100 Hz; left in, the drift down there makes
        # some 20 ms frames far louder than the SNR says.
        spectrum[freqs < PINK_FLOOR_HZ] = 0
        spectrum[freqs >= PINK_FLOOR_HZ] /= np.sqrt(freqs[freqs >= PINK_FLOOR_HZ])
        values = np.fft.irfft(spectrum, samples)
    target = speech_rms / 10 ** (settings.snr_db / 20)
    values *= target / (float(np.sqrt(np.mean(values**2))) or 1.0)
    return np.clip(np.round(values), -32768, 32767).astype("<i2").tobytes()


def _clip(pcm: bytes, limit: int) -> bytes:
    samples = np.frombuffer(pcm, dtype="<i2")
    return np.clip(samples, -limit, limit).astype("<i2").tobytes()


def speech_level(ulaw_clips: list[bytes]) -> float:
    """RMS (16-bit) of the voiced frames of the persona's phrases: what SNR is relative to."""
    levels = []
    for clip in ulaw_clips:
        pcm = audioop.ulaw2lin(clip, 2)
        for start in range(0, len(pcm) - 2 * FRAME_SAMPLES + 1, 2 * FRAME_SAMPLES):
            rms = audioop.rms(pcm[start : start + 2 * FRAME_SAMPLES], 2)
            if rms > 300:
                levels.append(rms)
    return math.sqrt(sum(r * r for r in levels) / len(levels)) if levels else 3000.0
