"""What flows through one speech session's pipeline: text in, audio chunks and marks out.

The receive loop queues ``Work`` (text segments, flush and finish marks) for the synthesiser,
which queues ``Out`` (audio chunks, and the marks, in order) for the paced sender.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ivr_bridge.speechserver.audio_format import split_pcm
from ivr_bridge.speechserver.synth import WordEvent


@dataclass(frozen=True, slots=True)
class Segment:
    text: str


@dataclass(frozen=True, slots=True)
class FlushMark:
    nonce: int | None


@dataclass(frozen=True, slots=True)
class FinishMark:
    pass


@dataclass(frozen=True, slots=True)
class AudioChunk:
    pcm16: bytes
    duration_s: float
    words: list[tuple[str, float, float]] = field(default_factory=list)
    """(text, start relative to this chunk, duration)."""


Work = Segment | FlushMark | FinishMark
Out = AudioChunk | FlushMark | FinishMark


def chunk_audio(pcm16: bytes, rate: int, words: list[WordEvent], chunk_ms: int) -> list[AudioChunk]:
    """Cut one synthesis into frames, giving each word to the frame its start falls in."""
    pieces = split_pcm(pcm16, rate, chunk_ms)
    out: list[AudioChunk] = []
    position = 0.0
    pending = list(words)
    for index, piece in enumerate(pieces):
        duration = len(piece) / 2 / rate
        last = index == len(pieces) - 1
        mine = [w for w in pending if w.start_s < position + duration or last]
        pending = pending[len(mine) :]
        out.append(
            AudioChunk(
                piece,
                duration,
                [(w.text, max(w.start_s - position, 0.0), w.duration_s) for w in mine],
            )
        )
        position += duration
    return out
