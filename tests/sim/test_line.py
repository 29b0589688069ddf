"""A persona's line: noise at its SNR, lost packets, clipping and jitter, the same for a seed."""

from __future__ import annotations

import audioop
import math

import pytest

from ivr_bridge.sim.twilio.line import LineConditions, LineSettings, NoiseSettings, speech_level

SILENCE = b"\xff" * 160


def tone(amplitude: int) -> bytes:
    pcm = b"".join(
        int(amplitude * math.sin(2 * math.pi * 440 * n / 8000)).to_bytes(2, "little", signed=True)
        for n in range(160)
    )
    return audioop.lin2ulaw(pcm, 2)


@pytest.mark.parametrize("kind", ["white", "pink"])
def test_noise_sits_its_snr_below_the_speech(kind: str) -> None:
    line = LineConditions(
        NoiseSettings(kind=kind, snr_db=20), LineSettings(), seed=1, speech_rms=3000
    )
    frames = b"".join(line.frame(SILENCE) for _ in range(100))
    rms = audioop.rms(audioop.ulaw2lin(frames, 2), 2)
    assert rms == pytest.approx(300, rel=0.15)  # 3000 / 10^(20/20)


def test_the_same_seed_is_the_same_line_and_another_seed_is_not() -> None:
    def run(seed: int) -> list[bytes]:
        line = LineConditions(
            NoiseSettings(snr_db=10), LineSettings(loss_pct=10, jitter_ms=60), seed=seed
        )
        return [line.frame(tone(8000)) + str(line.delay_ms()).encode() for _ in range(50)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_lost_frames_are_silence_at_about_the_rate_asked() -> None:
    line = LineConditions(None, LineSettings(loss_pct=10), seed=3)
    out = [line.frame(tone(8000)) for _ in range(2000)]
    lost = sum(1 for frame in out if frame == SILENCE)
    assert lost == line.frames_lost
    assert 150 < lost < 250


def test_clipping_caps_the_samples() -> None:
    line = LineConditions(None, LineSettings(clip_dbfs=-12), seed=0)
    _, high = audioop.minmax(audioop.ulaw2lin(line.frame(tone(30000)), 2), 2)
    assert high <= 32767 * 10 ** (-12 / 20) * 1.05  # µ-law rounding
    assert high > 6000


def test_jitter_holds_frames_back_by_at_most_its_bound() -> None:
    line = LineConditions(None, LineSettings(jitter_ms=80), seed=5)
    delays = [line.delay_ms() for _ in range(500)]
    assert 0 <= min(delays) and max(delays) <= 80 and max(delays) > 60


def test_speech_level_ignores_the_pauses() -> None:
    assert speech_level([SILENCE * 20 + tone(6000) * 20]) == pytest.approx(4242, rel=0.05)
