"""The caller's playout buffer: bot audio plays at the real audio rate, marks echo when passed.

This is the part of Twilio that tells a server what the caller actually heard. Audio and marks
queue in arrival order; every 20 ms of call time :meth:`PlayoutBuffer.advance` plays the next
frame. A mark is echoed when all audio queued before it has finished playing (at the boundary
after its last frame), at once when nothing is buffered or playing, and ``clear`` drops the queued
audio and echoes every pending mark immediately. Pure logic: no clock, no I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ivr_bridge.sim.twilio.protocol import FRAME_BYTES


@dataclass(frozen=True, slots=True)
class _Mark:
    name: str


@dataclass(frozen=True, slots=True)
class PlayedFrame:
    audio: bytes
    """Exactly one frame of µ-law: bot audio, padded with silence on underrun."""
    bot_bytes: int
    """How many bytes of it came from the server (0 = the buffer was empty)."""
    echoes: list[str] = field(default_factory=list)
    """Marks whose audio finished playing at the start of this frame: echo them now."""


@dataclass(frozen=True, slots=True)
class Cleared:
    dropped_bytes: int
    echoes: list[str]


class PlayoutBuffer:
    """Bot audio waiting to be heard, with the marks between it."""

    def __init__(self, frame_bytes: int = FRAME_BYTES) -> None:
        self.frame_bytes = frame_bytes
        self._queue: deque[bytes | _Mark] = deque()
        self._buffered = 0
        self._finishing: list[str] = []
        """Marks passed inside the frame now playing: echoed when it ends."""
        self._playing = False

    @property
    def buffered_bytes(self) -> int:
        """Audio received but not yet started playing."""
        return self._buffered

    @property
    def playing(self) -> bool:
        """The frame now playing carries bot audio."""
        return self._playing

    @property
    def pending_marks(self) -> list[str]:
        return self._finishing + [i.name for i in self._queue if isinstance(i, _Mark)]

    def push_audio(self, ulaw: bytes) -> None:
        if ulaw:
            self._queue.append(ulaw)
            self._buffered += len(ulaw)

    def push_mark(self, name: str) -> list[str]:
        """Queue a mark; returns the marks to echo right away (this one, if nothing is buffered)."""
        if self._queue:
            self._queue.append(_Mark(name))
            return []
        if self._playing:
            self._finishing.append(name)
            return []
        return [name]

    def clear(self) -> Cleared:
        """Drop every queued frame; every pending mark is echoed now."""
        echoes = self.pending_marks
        dropped = self._buffered
        self._queue.clear()
        self._finishing = []
        self._buffered = 0
        return Cleared(dropped_bytes=dropped, echoes=echoes)

    def advance(self) -> PlayedFrame:
        """Frame boundary: report marks that just finished, then start playing the next frame."""
        echoes, self._finishing = self._finishing, []
        out = bytearray()
        while self._queue:
            head = self._queue[0]
            if isinstance(head, _Mark):
                self._queue.popleft()
                self._finishing.append(head.name)
                continue
            if len(out) == self.frame_bytes:
                break
            take = min(self.frame_bytes - len(out), len(head))
            out += head[:take]
            self._buffered -= take
            if take == len(head):
                self._queue.popleft()
            else:
                self._queue[0] = head[take:]
        bot_bytes = len(out)
        self._playing = bot_bytes > 0
        if not self._playing and self._finishing:
            # Marks with no audio before them in this frame: nothing was playing, echo now.
            echoes += self._finishing
            self._finishing = []
        out += b"\xff" * (self.frame_bytes - bot_bytes)
        return PlayedFrame(audio=bytes(out), bot_bytes=bot_bytes, echoes=echoes)


class UnderrunCounter:
    """Gaps the caller hears *inside* bot speech: the buffer ran dry, then audio came back.

    Twilio plays a frame of silence when a server falls behind; inside an utterance that is a
    click or a stutter, the symptom of an overloaded bridge. A dry spell longer than
    ``max_gap_ms`` is taken as the end of the utterance (the next one is a new turn), and a
    ``clear`` ends the utterance on purpose, so neither counts. Pure logic, fed once per tick.
    """

    def __init__(self, frame_bytes: int = FRAME_BYTES, max_gap_ms: float = 500.0) -> None:
        self.frame_bytes = frame_bytes
        self.max_gap_bytes = int(max_gap_ms * frame_bytes / 20)
        self.underruns = 0
        self.missing_ms = 0.0
        self._in_audio = False
        self._gap_bytes = 0

    def played(self, bot_bytes: int) -> float:
        """One frame played with ``bot_bytes`` of bot audio; returns the gap (ms) it closed."""
        closed = 0.0
        if self._gap_bytes:
            if bot_bytes:
                closed = self._gap_bytes / (self.frame_bytes / 20)
                self.underruns += 1
                self.missing_ms += closed
                self._gap_bytes = 0
            else:
                self._gap_bytes += self.frame_bytes
                if self._gap_bytes > self.max_gap_bytes:
                    self._gap_bytes = 0
                    self._in_audio = False
                return 0.0
        if bot_bytes:
            self._in_audio = True
            # Audio fills a frame from its start, so a short frame ends in a gap.
            self._gap_bytes = self.frame_bytes - bot_bytes
        elif self._in_audio:
            self._gap_bytes = self.frame_bytes
        return closed

    def cleared(self) -> None:
        """The server cleared the buffer: the utterance ended on purpose."""
        self._in_audio = False
        self._gap_bytes = 0
