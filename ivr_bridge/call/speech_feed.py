"""Speech-session events → playback: which utterance each audio byte belongs to.

Audio arrives in the order the text was flushed, so the utterances still synthesising form a
queue: audio and timestamps belong to its head, and a ``flush_complete`` (matched by nonce) ends
an utterance's synthesis. Audio of text discarded by a ``reset`` never arrives here: dropping it
until the matching ``reset_complete`` is the speech session's promise (``SpeechSession``).
A session that stalls or drops is mended below this (``ivr_bridge.speech.recovering``); when
that fails, the session's events end in an error and every utterance still waiting fails with
it, so the dialog never waits on dead air.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog

from ivr_bridge.call.playback import Playback
from ivr_bridge.call.utterance import Utterance
from ivr_bridge.speech.session import (
    FlushComplete,
    SpeechAudio,
    SpeechSession,
    SpeechSessionClosed,
    SpeechSessionError,
    SpeechTimestamps,
)

log = structlog.get_logger(__name__)


class SpeechFeed:
    def __init__(
        self,
        speech: SpeechSession,
        playback: Playback,
        record_event: Callable[..., None],
        on_first_audio: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_first_audio``: an utterance's first audio arrived (the turn timing's stamp)."""
        self._on_first_audio = on_first_audio
        self._speech = speech
        self._playback = playback
        self._record_event = record_event
        self._synthesizing: deque[Utterance] = deque()
        """Utterances whose text was sent and whose audio is still arriving, oldest first."""
        self._flushes: dict[int, Utterance] = {}
        self._first_text_at: dict[int, float] = {}
        """Wall time each speaking utterance's first text was sent, until its first audio."""

    def start(self, utterance: Utterance) -> None:
        """Its first text is about to be sent: its audio is next in line."""
        self._synthesizing.append(utterance)
        self._first_text_at[utterance.id] = time.monotonic()

    def register_flush(self, nonce: int, utterance: Utterance) -> None:
        self._flushes[nonce] = utterance

    def in_flight(self) -> list[asyncio.Future[Any]]:
        """Completion futures of everything still being synthesised."""
        return [u.done for u in self._synthesizing]

    async def run(self) -> None:
        """Owned by the conductor. Ending at all, before hang-up, is a speech-session failure."""
        try:
            async for event in self._speech.events():
                if isinstance(event, SpeechAudio):
                    await self._on_audio(event.data)
                elif isinstance(event, SpeechTimestamps):
                    if self._synthesizing:
                        self._synthesizing[0].words.extend(event.words)
                elif isinstance(event, FlushComplete):
                    self._on_flush_complete(event.nonce)
        except SpeechSessionError as exc:
            self._fail_pending(exc)
            raise
        ended = SpeechSessionClosed(None, "speech session ended mid-call")
        self._fail_pending(ended)
        raise ended

    async def cancel(self, utterance: Utterance) -> None:
        """Barge-in: stop the speech service; the session drops its audio from here on."""
        if utterance not in self._synthesizing:
            return  # all of its audio already arrived; nothing is in flight
        # A reset drops all buffered text, so everything still synthesising is cut with it.
        while self._synthesizing:
            cut = self._synthesizing.popleft()
            cut.interrupted = True
            cut.settle()
            self._first_text_at.pop(cut.id, None)
        for nonce in [n for n, u in self._flushes.items() if u.interrupted]:
            del self._flushes[nonce]
        await self._speech.reset()

    async def _on_audio(self, data: bytes) -> None:
        if not self._synthesizing:
            log.warning("speech audio with no utterance waiting for it; dropped", bytes=len(data))
            return
        utterance = self._synthesizing[0]
        sent_at = self._first_text_at.pop(utterance.id, None)
        if sent_at is not None:  # time to first audio, for the turn-latency breakdown
            tts_ms = round((time.monotonic() - sent_at) * 1000)
            self._record_event("bot_first_audio", utterance=utterance.id, tts_ms=tts_ms)
            self._on_first_audio()
        await self._playback.enqueue(utterance, data)

    def _on_flush_complete(self, nonce: int) -> None:
        utterance = self._flushes.pop(nonce, None)
        if utterance is not None and utterance in self._synthesizing:
            self._synthesizing.remove(utterance)
            self._playback.synthesis_complete(utterance)

    def _fail_pending(self, exc: SpeechSessionError) -> None:
        """A dead speech session must not leave the dialog waiting forever (dead air)."""
        while self._synthesizing:
            utterance = self._synthesizing.popleft()
            if not utterance.done.done():
                utterance.done.set_exception(exc)
