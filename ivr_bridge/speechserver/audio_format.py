"""Encoding synthesized PCM into the session/REST output formats, in paced-size chunks.

``ulaw`` is 8-bit G.711 µ-law "with a WAV header". Our header is deliberately not the 44-byte
canonical form, so clients must walk chunks: RIFF/WAVE, an 18-byte ``fmt `` (format tag 7, one
channel, 8 bits, cbSize 0), a ``fact`` chunk, then ``data``. Streaming means sizes are unknown,
so the RIFF, fact and data size fields hold the 0xFFFFFFFF placeholder.
"""

from __future__ import annotations

import array
import struct
import sys

from ivr_bridge.audio.codec import pcm16_to_ulaw

WAVE_FORMAT_PCM = 1
WAVE_FORMAT_MULAW = 7
STREAMING_SIZE = 0xFFFFFFFF

BYTES_PER_SAMPLE = {"ulaw": 1, "pcm_s16le": 2, "pcm_f32le": 4, "wav": 2}


def encode(pcm16: bytes, fmt: str) -> bytes:
    """Encode little-endian 16-bit PCM as ``fmt`` (no container)."""
    if fmt in ("pcm_s16le", "wav"):
        return pcm16
    if fmt == "ulaw":
        return pcm16_to_ulaw(pcm16)
    if fmt == "pcm_f32le":
        samples = array.array("h", pcm16)
        if sys.byteorder == "big":
            samples.byteswap()
        floats = array.array("f", (s / 32768.0 for s in samples))
        if sys.byteorder == "big":
            floats.byteswap()
        return floats.tobytes()
    raise ValueError(f"unsupported format {fmt!r}")


def ulaw_wav_header(sample_rate: int) -> bytes:
    """Streaming WAV header for µ-law mono (sizes are placeholders)."""
    fmt_chunk = struct.pack("<HHIIHHH", WAVE_FORMAT_MULAW, 1, sample_rate, sample_rate, 1, 8, 0)
    return (
        b"RIFF"
        + struct.pack("<I", STREAMING_SIZE)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt_chunk))
        + fmt_chunk
        + b"fact"
        + struct.pack("<II", 4, STREAMING_SIZE)
        + b"data"
        + struct.pack("<I", STREAMING_SIZE)
    )


def pcm_wav_file(pcm16: bytes, sample_rate: int) -> bytes:
    """A complete 16-bit PCM WAV file (REST ``wav`` format, sizes known)."""
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(pcm16),
        b"WAVE",
        b"fmt ",
        16,
        WAVE_FORMAT_PCM,
        1,
        sample_rate,
        sample_rate * 2,
        2,
        16,
        b"data",
        len(pcm16),
    )
    return header + pcm16


def split_pcm(pcm16: bytes, sample_rate: int, chunk_ms: int) -> list[bytes]:
    """Cut PCM into chunks of ``chunk_ms`` (the last one shorter), on sample boundaries."""
    step = max(1, sample_rate * chunk_ms // 1000) * 2
    return [pcm16[i : i + step] for i in range(0, len(pcm16), step)]
