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

from pydantic import BaseModel, ConfigDict, Field

from ivr_bridge.audio.codec import audioop  # the one guarded import (3.11-3.13)

FRAME_SAMPLES = 160


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


@dataclass(slots=True)
class LineConditions:
    """Applies a persona's noise and line settings to each outgoing frame."""

    noise: NoiseSettings | None
    line: LineSettings
    seed: int
    speech_rms: float = 3000.0
    """The persona's speech level (16-bit RMS), which the noise's SNR is measured against."""
    frames_lost: int = 0
    _rng: random.Random = field(init=False)
    _pink: list[float] = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._pink = [0.0] * 7

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
        if self.noise is not None:
            pcm = audioop.add(pcm, self._noise(len(pcm) // 2), 2)
        if self.line.clip_dbfs is not None:
            pcm = _clip(pcm, round(32767 * 10 ** (self.line.clip_dbfs / 20)))
        return audioop.lin2ulaw(pcm, 2)

    def delay_ms(self) -> float:
        """How long the next frame is held back (0 without jitter)."""
        return self._rng.uniform(0, self.line.jitter_ms) if self.line.jitter_ms else 0.0

    def _noise(self, samples: int) -> bytes:
        assert self.noise is not None
        target = self.speech_rms / 10 ** (self.noise.snr_db / 20)
        rng = self._rng
        values = []
        for _ in range(samples):
            white = rng.gauss(0.0, 1.0)
            if self.noise.kind == "white":
                values.append(white)
                continue
            # Pink by summing octave-spaced random walks (Voss-McCartney, light).
            b = self._pink
            b[0] = 0.99886 * b[0] + white * 0.0555179
            b[1] = 0.99332 * b[1] + white * 0.0750759
            b[2] = 0.96900 * b[2] + white * 0.1538520
            b[3] = 0.86650 * b[3] + white * 0.3104856
            b[4] = 0.55000 * b[4] + white * 0.5329522
            b[5] = -0.7616 * b[5] - white * 0.0168980
            values.append((sum(b[:6]) + b[6] + white * 0.5362) * 0.11)
            b[6] = white * 0.115926
        rms = math.sqrt(sum(v * v for v in values) / len(values)) or 1.0
        scale = target / rms
        return b"".join(
            max(-32768, min(32767, round(v * scale))).to_bytes(2, "little", signed=True)
            for v in values
        )


def _clip(pcm: bytes, limit: int) -> bytes:
    samples = memoryview(bytearray(pcm)).cast("h")
    for i, value in enumerate(samples):
        if value > limit:
            samples[i] = limit
        elif value < -limit:
            samples[i] = -limit
    return samples.tobytes()


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
