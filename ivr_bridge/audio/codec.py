"""G.711 µ-law <-> 16-bit PCM, via stdlib ``audioop`` (3.11/3.12) or ``audioop-lts`` (3.13+).

Both expose the same C implementation under the module name ``audioop``; this module is the one
place that imports it, so the rest of the code never cares which one it got.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    # Python 3.11/3.12 warn that audioop is deprecated; 3.13+ use the audioop-lts backport.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

SAMPLE_RATE = 8000
"""Telephone audio: 8 kHz, 8-bit µ-law, one byte per sample."""

ULAW_BYTES_PER_MS = SAMPLE_RATE // 1000
ULAW_SILENCE = b"\xff"
"""µ-law code for zero amplitude."""


def ulaw_to_pcm16(ulaw: bytes) -> bytes:
    """Decode µ-law bytes to little-endian 16-bit PCM (twice as many bytes)."""
    return audioop.ulaw2lin(ulaw, 2)


def pcm16_to_ulaw(pcm: bytes) -> bytes:
    """Encode little-endian 16-bit PCM to µ-law (half as many bytes)."""
    return audioop.lin2ulaw(pcm, 2)


RatecvState = tuple[int, tuple[tuple[int, int], ...]] | None
"""``audioop.ratecv``'s filter state, carried between the chunks of one stream."""


def resample_pcm16(
    pcm: bytes, from_rate: int, to_rate: int, state: RatecvState = None
) -> tuple[bytes, RatecvState]:
    """Resample mono 16-bit PCM; pass the returned state back in for a continuous stream."""
    if from_rate == to_rate:
        return pcm, state
    converted, new_state = audioop.ratecv(pcm, 2, 1, from_rate, to_rate, state)
    return converted, new_state


def mix_pcm16(a: bytes, b: bytes) -> bytes:
    """Sum two equal-length 16-bit PCM signals sample by sample (clipped, not wrapped)."""
    return audioop.add(a, b, 2)


def rms_pcm16(pcm: bytes) -> int:
    """Root-mean-square amplitude of 16-bit PCM (0..32767)."""
    return audioop.rms(pcm, 2)


def ulaw_duration_ms(n_bytes: int) -> float:
    """Duration of ``n_bytes`` of 8 kHz µ-law audio in milliseconds."""
    return n_bytes / ULAW_BYTES_PER_MS
