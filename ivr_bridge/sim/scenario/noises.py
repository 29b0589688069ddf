"""Sounds a caller makes that are not speech, generated deterministically, as 8 kHz audio.

Why: webrtcvad (+ an energy floor) calls a cough or a breath speech, so the bot paused or was
cut by noise. The confirmer that fixes it (``ivr_bridge.audio.silero``) is only as good as the
noise it was checked against, so the noise lives here, in one place, for the unit tests, the
listener test and ``benchmarks/bench_barge_in.py`` alike. Every sound is numpy from a fixed
seed: the same bytes on every run and every machine, so a test failing on it is never flaky.

Kinds (``NOISE_KINDS``): a *cough* (a burst of noise shaped by two formant-ish resonances, a
sharp attack and a ~200 ms decay, sometimes twice), a *breath* (low-passed noise under a slow
half-second swell), a *knock* (three short damped impulses), a *DTMF* tone (two sines, 100 ms)
and *background speech*: real speech from the project's espeak-ng caller voice, 20 dB under a
normal talker (someone else in the room). Each clip starts and ends in line hiss.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ivr_bridge.audio.codec import SAMPLE_RATE, pcm16_to_ulaw

NOISE_KINDS = ("cough", "breath", "knock", "dtmf", "background_speech")
TALKER_RMS = 3000.0
"""RMS (16-bit PCM) of a caller talking at a normal level on a phone line."""
BACKGROUND_DB = -20.0
_HISS_RMS = 30.0
_DTMF = {"1": (697, 1209), "5": (770, 1336), "9": (852, 1477), "#": (941, 1477)}


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _hiss(rng: np.random.Generator, ms: int) -> np.ndarray:
    return rng.normal(0.0, _HISS_RMS, ms * SAMPLE_RATE // 1000)


def _resonate(x: np.ndarray, freq: float, bandwidth: float) -> np.ndarray:
    """A two-pole resonator (a formant) over ``x``; a loop is fine for clip-sized input."""
    r = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
    a1, a2 = 2 * r * np.cos(2 * np.pi * freq / SAMPLE_RATE), -r * r
    y = np.zeros_like(x)
    y1 = y2 = 0.0
    for i, v in enumerate(x):
        y0 = v + a1 * y1 + a2 * y2
        y[i] = y0
        y2, y1 = y1, y0
    return y


def _scaled(x: np.ndarray, rms: float) -> np.ndarray:
    current = float(np.sqrt(np.mean(x * x))) or 1.0
    return x * (rms / current)


def cough(seed: int = 0) -> np.ndarray:
    rng = _rng(seed)
    parts = [_hiss(rng, 150)]
    for _ in range(1 + seed % 2):
        n = int(SAMPLE_RATE * rng.uniform(0.18, 0.3))
        t = np.arange(n) / SAMPLE_RATE
        envelope = (1 - np.exp(-t / 0.006)) * np.exp(-t / rng.uniform(0.05, 0.09))
        burst = rng.normal(0.0, 1.0, n)
        shaped = _resonate(burst, rng.uniform(400, 700), 300) + 0.6 * _resonate(
            burst, rng.uniform(1400, 2200), 500
        )
        parts += [_scaled(shaped * envelope, TALKER_RMS * rng.uniform(1.0, 2.0)), _hiss(rng, 60)]
    parts.append(_hiss(rng, 300))
    return np.concatenate(parts)


def breath(seed: int = 0) -> np.ndarray:
    rng = _rng(seed)
    n = int(SAMPLE_RATE * rng.uniform(0.5, 0.8))
    envelope = np.sin(np.linspace(0.0, np.pi, n)) ** 2
    noise = rng.normal(0.0, 1.0, n)
    low = np.convolve(noise, np.ones(6) / 6, mode="same")  # breathy: mostly under 1 kHz
    body = _scaled(low * envelope, TALKER_RMS * rng.uniform(0.3, 0.6))
    return np.concatenate([_hiss(rng, 150), body, _hiss(rng, 300)])


def knock(seed: int = 0) -> np.ndarray:
    rng = _rng(seed)
    parts = [_hiss(rng, 150)]
    for _ in range(3):
        n = SAMPLE_RATE * 30 // 1000
        t = np.arange(n) / SAMPLE_RATE
        thud = np.sin(2 * np.pi * rng.uniform(150, 350) * t) * np.exp(-t / 0.006)
        gap = _hiss(rng, int(rng.integers(90, 160)))
        parts += [thud * TALKER_RMS * 4 + rng.normal(0, 200, n), gap]
    parts.append(_hiss(rng, 300))
    return np.concatenate(parts)


def dtmf(seed: int = 0) -> np.ndarray:
    rng = _rng(seed)
    low, high = list(_DTMF.values())[seed % len(_DTMF)]
    t = np.arange(SAMPLE_RATE // 10) / SAMPLE_RATE  # 100 ms
    tone = (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t)) * TALKER_RMS * 0.7
    return np.concatenate([_hiss(rng, 150), tone, _hiss(rng, 300)])


BACKGROUND_TEXT = "I said the blue one, not the red one"


def background_speech(seed: int = 0, text: str = BACKGROUND_TEXT) -> np.ndarray:
    """Someone else talking in the room: the caller voice, ``BACKGROUND_DB`` under a talker."""
    rng = _rng(seed)
    speech = np.frombuffer(caller_speech_pcm16(text), dtype="<i2").astype(np.float64)
    quiet = _scaled(speech, TALKER_RMS * 10 ** (BACKGROUND_DB / 20))
    return np.concatenate([_hiss(rng, 150), quiet + rng.normal(0.0, _HISS_RMS, len(quiet))])


def caller_speech_pcm16(text: str, voice: str = "brandon") -> bytes:
    """The simulated caller saying ``text`` (espeak-ng, the same bytes every time), 8 kHz PCM16.

    Blocking (a helper process synthesises it): for tests and benchmarks, not a running call."""
    from ivr_bridge.sim.scenario.caller_voice import synthesize_blocking

    return synthesize_blocking(text, voice, SAMPLE_RATE)


_MAKERS: dict[str, Callable[[int], np.ndarray]] = {
    "cough": cough,
    "breath": breath,
    "knock": knock,
    "dtmf": dtmf,
    "background_speech": background_speech,
}


def noise_pcm16(kind: str, seed: int = 0) -> bytes:
    """One clip of ``kind`` (one of ``NOISE_KINDS``) as 8 kHz little-endian 16-bit PCM."""
    samples = _MAKERS[kind](seed)
    return np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes()


def noise_ulaw(kind: str, seed: int = 0) -> bytes:
    """The same clip as the phone line carries it (8 kHz µ-law)."""
    return pcm16_to_ulaw(noise_pcm16(kind, seed))


def to_wav(pcm16: bytes, path: str) -> None:
    """Write 8 kHz mono PCM16 as a WAV file (the simulated caller ``play``s files)."""
    import wave

    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm16)
