"""Strip WAV (RIFF) headers out of a stream of audio frames.

LMNT's ``ulaw`` output is "µ-law with a WAV header", but whether that header comes once per
session or again after every flush, how long its ``fmt`` chunk is and which extra chunks it carries
are all undocumented, and streaming writers put placeholders (0 or 0xFFFFFFFF) in the size fields.
Twilio must never hear header bytes, so every frame boundary is checked for a header, the chunks are
walked up to ``data`` whatever their number and size, and a header split across frames is buffered
only until it is decided.

A header is only recognised at a frame boundary (a server writes it as the start of a message).
Raw µ-law can start with ``RIFF`` by chance, so a candidate must also carry ``WAVE`` at offset 8,
chunk ids of printable ASCII and a plausible ``fmt `` chunk before ``data``; otherwise its bytes
are passed through as audio.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from ivr_bridge.errors import AudioFormatError

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_MULAW = 0x0007
WAVE_FORMAT_EXTENSIBLE = 0xFFFE

_RIFF = b"RIFF"
_WAVE = b"WAVE"
_RIFF_PREAMBLE = 12
"""``RIFF`` + riff size + ``WAVE``."""
_CHUNK_HEADER = 8
_FMT_MIN, _FMT_MAX = 16, 40
MAX_HEADER_BYTES = 64 * 1024
"""A header longer than this is not a streaming header: treat the bytes as audio, not silence."""


class WavFormatError(AudioFormatError):
    """The stream's WAV header announces a format the caller cannot play."""


@dataclass(frozen=True, slots=True)
class WavFormat:
    """The fields of a ``fmt `` chunk a telephone path cares about."""

    format_tag: int
    """Effective tag: for WAVE_FORMAT_EXTENSIBLE, the tag inside the sub-format GUID."""
    channels: int
    sample_rate: int
    bits_per_sample: int

    @property
    def is_mulaw_8k_mono(self) -> bool:
        return (
            self.format_tag == WAVE_FORMAT_MULAW
            and self.channels == 1
            and self.sample_rate == 8000
            and self.bits_per_sample == 8
        )

    def describe(self) -> str:
        names = {WAVE_FORMAT_PCM: "pcm", WAVE_FORMAT_MULAW: "mulaw"}
        name = names.get(self.format_tag, f"tag 0x{self.format_tag:04x}")
        return f"{name} {self.sample_rate} Hz {self.channels} ch {self.bits_per_sample}-bit"


MULAW_8K_MONO = WavFormat(WAVE_FORMAT_MULAW, 1, 8000, 8)


def _is_chunk_id(tag: bytes) -> bool:
    return len(tag) == 4 and all(0x20 <= b <= 0x7E for b in tag)


def _parse_fmt(body: bytes) -> WavFormat | None:
    """Return the format, or None when the body cannot be a real ``fmt `` chunk."""
    tag, channels, rate, _byte_rate, _block_align, bits = struct.unpack_from("<HHIIHH", body)
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if len(body) < 40:
            return None
        tag = struct.unpack_from("<H", body, 24)[0]
    plausible = tag != 0 and 1 <= channels <= 16 and 1000 <= rate <= 768_000 and 1 <= bits <= 64
    return WavFormat(tag, channels, rate, bits) if plausible else None


class _Verdict:
    """Outcome of looking at buffered bytes that may start a header."""

    NEED_MORE = "need_more"
    NOT_HEADER = "not_header"
    HEADER = "header"


class WavHeaderStripper:
    """Feed every binary frame in order; get back only audio payload bytes.

    ``expected`` (optional) makes a header with any other format raise ``WavFormatError``, so a
    session that would send, say, 24 kHz PCM to a phone fails loudly instead of playing noise.
    """

    def __init__(self, expected: WavFormat | None = None) -> None:
        self.expected = expected
        self.format: WavFormat | None = None
        """Format of the last header seen (None until one was seen)."""
        self.headers_stripped = 0
        self.header_bytes_stripped = 0
        self._pending = bytearray()

    @property
    def pending_bytes(self) -> int:
        """Bytes held back because they might still turn out to be a header."""
        return len(self._pending)

    def feed(self, frame: bytes) -> bytes:
        """Process one frame; return the audio it (and any bytes held back before it) carries."""
        if self._pending:
            self._pending += frame
            candidate = bytes(self._pending)
        elif frame[:1] == _RIFF[:1]:
            candidate = frame
        else:
            return frame
        verdict, data_offset, fmt = self._judge(candidate)
        if verdict == _Verdict.NEED_MORE:
            if not self._pending:
                self._pending += frame
            return b""
        self._pending.clear()
        if verdict == _Verdict.NOT_HEADER:
            return candidate
        assert fmt is not None
        self.format = fmt
        self.headers_stripped += 1
        self.header_bytes_stripped += data_offset
        if self.expected is not None and fmt != self.expected:
            raise WavFormatError(
                f"stream audio is {fmt.describe()}, expected {self.expected.describe()}"
            )
        return candidate[data_offset:]

    def drain(self) -> bytes:
        """End of an utterance: bytes still held back were audio after all (a header never ends
        a stream), so hand them over."""
        held = bytes(self._pending)
        self._pending.clear()
        return held

    def reset(self) -> None:
        """Forget held-back bytes (their audio was discarded) and expect a frame boundary."""
        self._pending.clear()

    @staticmethod
    def _judge(buf: bytes) -> tuple[str, int, WavFormat | None]:
        """Decide whether ``buf`` starts a header; if so, where the audio after it begins."""
        if not _RIFF.startswith(buf[:4]) or not _WAVE.startswith(buf[8:12]):
            return _Verdict.NOT_HEADER, 0, None
        if len(buf) < _RIFF_PREAMBLE:
            return _Verdict.NEED_MORE, 0, None
        offset = _RIFF_PREAMBLE
        fmt: WavFormat | None = None
        while True:
            if offset > MAX_HEADER_BYTES:
                return _Verdict.NOT_HEADER, 0, None
            chunk_id = buf[offset : offset + 4]
            if not _is_chunk_id(chunk_id + b"    "[len(chunk_id) :]):
                return _Verdict.NOT_HEADER, 0, None
            if len(buf) < offset + _CHUNK_HEADER:
                return _Verdict.NEED_MORE, 0, None
            size = struct.unpack_from("<I", buf, offset + 4)[0]
            body = offset + _CHUNK_HEADER
            if chunk_id == b"data":
                if fmt is None:
                    return _Verdict.NOT_HEADER, 0, None
                return _Verdict.HEADER, body, fmt
            if chunk_id == b"fmt ":
                if not _FMT_MIN <= size <= _FMT_MAX or fmt is not None:
                    return _Verdict.NOT_HEADER, 0, None
                if len(buf) < body + size:
                    return _Verdict.NEED_MORE, 0, None
                fmt = _parse_fmt(buf[body : body + size])
                if fmt is None:
                    return _Verdict.NOT_HEADER, 0, None
            elif size > MAX_HEADER_BYTES:
                return _Verdict.NOT_HEADER, 0, None
            offset = body + size + (size & 1)  # RIFF pads odd-sized chunks to even length


def build_wav_header(
    fmt: WavFormat = MULAW_8K_MONO,
    *,
    fmt_size: int = 18,
    extra_chunks: Iterable[tuple[bytes, bytes]] = (),
    data_size: int = 0xFFFFFFFF,
    riff_size: int = 0xFFFFFFFF,
) -> bytes:
    """A WAV header ending with the ``data`` chunk header, as a streaming writer emits it.

    ``fmt_size`` is 16 (plain), 18 (with an empty cbSize) or 40 (WAVE_FORMAT_EXTENSIBLE);
    ``extra_chunks`` (id, body) go between ``fmt `` and ``data`` (``fact``, ``LIST``...), padded
    to even length. Size fields default to the 0xFFFFFFFF streaming placeholder.
    """
    block_align = fmt.channels * max(1, fmt.bits_per_sample // 8)
    tag = WAVE_FORMAT_EXTENSIBLE if fmt_size == 40 else fmt.format_tag
    body = struct.pack(
        "<HHIIHH",
        tag,
        fmt.channels,
        fmt.sample_rate,
        fmt.sample_rate * block_align,
        block_align,
        fmt.bits_per_sample,
    )
    if fmt_size == 18:
        body += struct.pack("<H", 0)
    elif fmt_size == 40:
        sub_format_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        body += struct.pack("<HHI", 22, fmt.bits_per_sample, 0)
        body += struct.pack("<H", fmt.format_tag) + sub_format_tail
    elif fmt_size != 16:
        raise ValueError("fmt_size must be 16, 18 or 40")
    out = bytearray(_RIFF + struct.pack("<I", riff_size) + _WAVE)
    out += b"fmt " + struct.pack("<I", len(body)) + body
    for chunk_id, chunk_body in extra_chunks:
        out += chunk_id + struct.pack("<I", len(chunk_body)) + chunk_body
        if len(chunk_body) & 1:
            out += b"\x00"
    out += b"data" + struct.pack("<I", data_size)
    return bytes(out)
