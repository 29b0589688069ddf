"""WAV-header stripping on a stream of frames: Twilio must receive every audio byte and no header
byte, wherever and however often the server puts a header."""

from __future__ import annotations

import itertools
import struct

import pytest

from ivr_bridge.audio.wav import (
    MULAW_8K_MONO,
    WAVE_FORMAT_MULAW,
    WAVE_FORMAT_PCM,
    WavFormat,
    WavFormatError,
    WavHeaderStripper,
    build_wav_header,
)

AUDIO_A = bytes(range(0x80, 0xFF)) * 3
AUDIO_B = bytes(range(0x10, 0x70)) * 2


def feed_all(stripper: WavHeaderStripper, frames: list[bytes]) -> bytes:
    return b"".join(stripper.feed(frame) for frame in frames)


def test_header_on_first_frame_only() -> None:
    stripper = WavHeaderStripper()
    header = build_wav_header()
    out = feed_all(stripper, [header + AUDIO_A[:100], AUDIO_A[100:], AUDIO_B])
    assert out == AUDIO_A + AUDIO_B
    assert stripper.headers_stripped == 1
    assert stripper.format == MULAW_8K_MONO


def test_header_alone_in_its_own_frame() -> None:
    stripper = WavHeaderStripper()
    assert stripper.feed(build_wav_header()) == b""
    assert stripper.pending_bytes == 0
    assert stripper.feed(AUDIO_A) == AUDIO_A


def test_header_again_after_each_flush_at_a_frame_boundary() -> None:
    stripper = WavHeaderStripper()
    header = build_wav_header(fmt_size=16)
    frames = [header + AUDIO_A, AUDIO_B, header + AUDIO_B, AUDIO_A, header, AUDIO_A]
    assert feed_all(stripper, frames) == AUDIO_A + AUDIO_B + AUDIO_B + AUDIO_A + AUDIO_A
    assert stripper.headers_stripped == 3
    assert stripper.header_bytes_stripped == 3 * len(header)


@pytest.mark.parametrize("cuts", [(5,), (20,), (44,), (3, 30), (11, 12), (1, 40)])
def test_header_split_across_frames(cuts: tuple[int, ...]) -> None:
    stream = build_wav_header() + AUDIO_A
    bounds = (0, *cuts, len(stream))
    frames = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    stripper = WavHeaderStripper()
    assert feed_all(stripper, frames) == AUDIO_A
    assert stripper.headers_stripped == 1


def test_split_header_holds_back_nothing_once_decided() -> None:
    header = build_wav_header()
    stripper = WavHeaderStripper()
    assert stripper.feed(header[:30]) == b""
    assert stripper.pending_bytes == 30
    assert stripper.feed(header[30:] + AUDIO_A[:7]) == AUDIO_A[:7]
    assert stripper.pending_bytes == 0


def test_fact_and_list_chunks_with_odd_size_padding() -> None:
    extra = [(b"fact", struct.pack("<I", 0)), (b"LIST", b"INFOISFT\x05\x00\x00\x00espk\x00")]
    assert len(extra[1][1]) % 2 == 1  # exercises the pad byte
    header = build_wav_header(extra_chunks=extra)
    assert len(header) != 44
    stripper = WavHeaderStripper()
    assert feed_all(stripper, [header[:50], header[50:] + AUDIO_A]) == AUDIO_A
    assert stripper.format == MULAW_8K_MONO


@pytest.mark.parametrize("fmt_size", [16, 18, 40])
def test_fmt_chunk_sizes(fmt_size: int) -> None:
    header = build_wav_header(fmt_size=fmt_size)
    stripper = WavHeaderStripper(expected=MULAW_8K_MONO)
    assert stripper.feed(header + AUDIO_B) == AUDIO_B
    assert stripper.format is not None and stripper.format.is_mulaw_8k_mono


@pytest.mark.parametrize("placeholder", [0, 0xFFFFFFFF, 1234])
def test_size_fields_are_not_trusted(placeholder: int) -> None:
    header = build_wav_header(data_size=placeholder, riff_size=placeholder)
    stripper = WavHeaderStripper()
    assert feed_all(stripper, [header + AUDIO_A, AUDIO_B]) == AUDIO_A + AUDIO_B


def test_no_header_at_all_passes_every_byte() -> None:
    stripper = WavHeaderStripper()
    frames = [AUDIO_A, AUDIO_B, b"\xff" * 160]
    assert feed_all(stripper, frames) == b"".join(frames)
    assert stripper.headers_stripped == 0
    assert stripper.format is None


@pytest.mark.parametrize(
    "frame",
    [
        b"RIFF\x10\x20\x30\x40" + AUDIO_A,  # no WAVE tag
        b"RIFF\xff\xff\xff\xffWAVE\x81\x82\x83\x84" + AUDIO_A,  # first chunk id not ASCII
        b"RIFF\xff\xff\xff\xffWAVEfmt \xff\x00\x00\x00" + AUDIO_A,  # implausible fmt size
        b"RIFF\xff\xff\xff\xffWAVEdata\x00\x00\x00\x00" + AUDIO_A,  # data before any fmt
        b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + b"\x00" * 16 + AUDIO_A,  # zero fmt
        b"RIF",  # short frame that turns out to be audio (see next frame)
    ],
)
def test_raw_audio_starting_with_riff_is_kept(frame: bytes) -> None:
    stripper = WavHeaderStripper()
    out = feed_all(stripper, [frame, AUDIO_B])
    assert out == frame + AUDIO_B
    assert stripper.headers_stripped == 0


def test_audio_held_as_possible_header_is_released_at_end_of_utterance() -> None:
    stripper = WavHeaderStripper()
    assert stripper.feed(b"RIFF") == b""
    assert stripper.drain() == b"RIFF"
    assert stripper.feed(AUDIO_A) == AUDIO_A


def test_reset_forgets_a_half_header() -> None:
    stripper = WavHeaderStripper()
    assert stripper.feed(build_wav_header()[:20]) == b""
    stripper.reset()
    assert stripper.feed(AUDIO_A) == AUDIO_A


def test_riff_inside_a_frame_is_audio() -> None:
    """Headers start only at frame boundaries; b"RIFF" mid-frame is just samples."""
    stripper = WavHeaderStripper()
    frame = AUDIO_A + build_wav_header() + AUDIO_B
    assert stripper.feed(frame) == frame


@pytest.mark.parametrize(
    "fmt",
    [
        WavFormat(WAVE_FORMAT_PCM, 1, 8000, 16),
        WavFormat(WAVE_FORMAT_MULAW, 1, 24000, 8),
        WavFormat(WAVE_FORMAT_MULAW, 2, 8000, 8),
    ],
)
def test_non_mulaw_8k_mono_is_detected_and_rejected(fmt: WavFormat) -> None:
    header = build_wav_header(fmt)
    lenient = WavHeaderStripper()
    assert lenient.feed(header + AUDIO_A) == AUDIO_A
    assert lenient.format == fmt and not lenient.format.is_mulaw_8k_mono

    strict = WavHeaderStripper(expected=MULAW_8K_MONO)
    with pytest.raises(WavFormatError, match=f"{fmt.sample_rate} Hz"):
        strict.feed(header + AUDIO_A)
