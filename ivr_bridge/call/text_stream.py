"""Streamed text into the speech session: one utterance whose text arrives in pieces.

The LLM dialog hands the conductor its answer while tokens still arrive (``say_stream``); plain
``say`` is the same thing with one piece. The feeder below is the only code that reads the
pieces: it sends each one at once (the speech service decides when it has enough context, so no
sentence splitting here), grows the utterance's text so the heard-text cut sees it, and flushes
once at the end. On barge-in the conductor cancels the feeder, which stops reading the pieces and
so lets the producer (the model's HTTP stream) be cancelled too.

Wire order matters: a speech ``reset`` must follow every piece of a cut utterance, never precede
one. The session serialises sends in call order, and the feeder checks ``stopped()`` right before
each send, so once a cut was decided no further text or flush is queued.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import structlog

from ivr_bridge.call.utterance import Utterance
from ivr_bridge.speech.session import SpeechSession

log = structlog.get_logger(__name__)


async def single(text: str) -> AsyncIterator[str]:
    """``say(text)`` as a stream of one piece (nothing at all for empty text)."""
    if text:
        yield text


async def first_piece(pieces: AsyncIterator[str]) -> str | None:
    """The first non-empty piece, or None when the stream ends (or fails) without text."""
    try:
        async for piece in pieces:
            if piece:
                return piece
    except Exception:  # the protocol says chunks never raise; never let one kill the call
        log.exception("text stream failed before its first piece; nothing is spoken")
    return None


@dataclass(slots=True)
class TextFeed:
    """Feeds the rest of one utterance's text; owned (and cancelled) by the conductor."""

    utterance: Utterance
    speech: SpeechSession
    stopped: Callable[[], bool]
    """True once the utterance was cut: send nothing more, not even the flush."""
    on_flush: Callable[[int, Utterance], None]
    """Registers the flush nonce so ``flush_complete`` ends the utterance's synthesis."""
    first_text_at: float = field(default_factory=time.monotonic)
    """Wall time the first piece went to the speech session (for time-to-first-audio)."""
    pieces_sent: int = 1
    flushed: bool = False

    async def run(self, pieces: AsyncIterator[str]) -> None:
        try:
            async for piece in pieces:
                if self.stopped():
                    return
                if not piece:
                    continue
                self.utterance.text += piece
                self.pieces_sent += 1
                await self.speech.send_text(piece)
        except Exception:  # treat a failing producer as the end of the text: say what we have
            log.exception("text stream failed mid-utterance; flushing what was sent")
        if self.stopped():
            return
        self.on_flush(await self.speech.flush(), self.utterance)
        self.flushed = True
