"""Playback: speech-session audio -> Twilio media frames, paced by what Twilio says it played.

Why pace at all: Twilio buffers whatever we send. A deep buffer means the caller keeps hearing
the bot after an interruption unless ``clear`` works perfectly, and "what was heard" drifts from
"what was sent". So audio is released only while it is at most ``lead_ms`` ahead of acknowledged
playback (mark echoes), with a wall-clock fallback so a lost echo never stalls the call.

Only this class writes media/mark/clear frames; the bot is *audible* exactly while Twilio holds
audio we sent and it has not confirmed as played.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable

import structlog

from ivr_bridge.audio.codec import ULAW_BYTES_PER_MS
from ivr_bridge.call.marks import MarkLedger, SentChunk
from ivr_bridge.call.utterance import Utterance
from ivr_bridge.telephony.twilio.models import clear_json, mark_json, media_json

log = structlog.get_logger(__name__)

MIN_FRAME_BYTES = 20 * ULAW_BYTES_PER_MS
"""Never send a media frame shorter than 20 ms (one Twilio frame), except an utterance's tail."""

SendText = Callable[[str, str], Awaitable[None]]
"""Sends one JSON text frame to Twilio: ``send(event_name, json_text)``."""


class Playback:
    def __init__(
        self,
        send: SendText,
        stream_sid: str,
        *,
        chunk_ms: int = 100,
        lead_ms: int = 300,
        grace_ms: int = 1000,
        max_buffer_ms: int = 30_000,
        clock: Callable[[], float] = time.monotonic,
        on_first_media: Callable[[], None] | None = None,
    ) -> None:
        self._send = send
        self._stream_sid = stream_sid
        self._chunk_bytes = chunk_ms * ULAW_BYTES_PER_MS
        self._lead_bytes = lead_ms * ULAW_BYTES_PER_MS
        self._grace_s = grace_ms / 1000
        self._max_buffer_bytes = max_buffer_ms * ULAW_BYTES_PER_MS
        self._clock = clock
        self._on_first_media = on_first_media
        self.ledger: MarkLedger[Utterance] = MarkLedger()
        self._queue: deque[tuple[Utterance, bytearray]] = deque()
        self._queued_bytes = 0
        self._paused = False
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._progress = asyncio.Event()
        """Set whenever audio is confirmed played or cleared, for ``wait_idle``."""
        self._play_end = 0.0
        """Wall-clock time at which everything sent so far should have finished playing."""
        self.frames_sent = 0
        self.clears_sent = 0

    # --- Inputs -------------------------------------------------------------------------------

    async def enqueue(self, utterance: Utterance, audio: bytes) -> None:
        """Queue synthesised audio; waits while the local buffer is full (backpressure)."""
        if utterance.interrupted or not audio:
            return
        while self._queued_bytes >= self._max_buffer_bytes:
            self._room.clear()
            await self._room.wait()
        if utterance.interrupted:  # cut while we waited for room: its audio must not play
            return
        utterance.bytes_received += len(audio)
        if self._queue and self._queue[-1][0] is utterance:
            self._queue[-1][1].extend(audio)
        else:
            self._queue.append((utterance, bytearray(audio)))
        self._queued_bytes += len(audio)
        self._wake.set()

    def synthesis_complete(self, utterance: Utterance) -> None:
        """No more audio will come for this utterance."""
        utterance.synthesis_complete = True
        utterance.settle()
        self._wake.set()

    def on_mark(self, name: str) -> None:
        self._credit(self.ledger.on_echo(name))

    def pause(self) -> None:
        """Stop releasing audio (barge-in onset); what Twilio holds keeps playing."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self._wake.set()

    async def clear(self) -> list[Utterance]:
        """Stop the bot now: empty Twilio's buffer and ours. Returns the utterances cut short."""
        cut: list[Utterance] = []
        if self.ledger.pending:
            await self._send("clear", clear_json(self._stream_sid))
            self.clears_sent += 1
        for chunk in self.ledger.on_clear():
            if chunk.owner not in cut:
                cut.append(chunk.owner)
        for utterance, _ in self._queue:
            if utterance not in cut:
                cut.append(utterance)
        self._queue.clear()
        self._queued_bytes = 0
        self._room.set()
        self._play_end = self._clock()
        for utterance in cut:
            utterance.interrupted = True
            utterance.settle()
        self._progress.set()
        return cut

    # --- State --------------------------------------------------------------------------------

    @property
    def audible(self) -> bool:
        """Twilio holds audio of ours it has not confirmed as played."""
        return self.ledger.pending > 0

    @property
    def idle(self) -> bool:
        """Nothing queued here and nothing unplayed at Twilio."""
        return not self._queue and not self.ledger.pending

    async def wait_idle(self) -> None:
        """Until everything queued has been sent and confirmed played (or cleared)."""
        while not self.idle:
            self._progress.clear()
            await self._progress.wait()

    # --- The release loop ---------------------------------------------------------------------

    async def run(self) -> None:
        """Owned by the call; cancelled on hang-up."""
        while True:
            self._wake.clear()
            now = self._clock()
            self._credit(self.ledger.assume_played_until(now - self._grace_s))
            if await self._release_one(now):
                continue
            deadline = self.ledger.oldest_deadline()
            timeout = None if deadline is None else max(0.005, deadline + self._grace_s - now)
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # lands while the event is being set, leaving the task unkillable at hang-up.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _release_one(self, now: float) -> bool:
        if self._paused or not self._queue:
            return False
        ahead = self.ledger.unplayed_bytes
        if ahead >= self._lead_bytes:
            return False
        utterance, buf = self._queue[0]
        take = min(len(buf), self._chunk_bytes)
        tail = utterance.synthesis_complete
        starving = ahead < self._chunk_bytes
        if take < self._chunk_bytes and not tail and not (starving and take >= MIN_FRAME_BYTES):
            return False  # wait for more audio rather than send a choppy sliver
        audio = bytes(buf[:take])
        del buf[:take]
        if not buf:
            self._queue.popleft()
        self._queued_bytes -= take
        self._room.set()
        self._play_end = max(self._play_end, now) + take / (ULAW_BYTES_PER_MS * 1000)
        chunk = self.ledger.next_mark(take, utterance, self._play_end)
        await self._send("media", media_json(self._stream_sid, audio))
        await self._send("mark", mark_json(self._stream_sid, chunk.mark))
        utterance.bytes_sent += take
        self.frames_sent += 1
        if self.frames_sent == 1 and self._on_first_media is not None:
            self._on_first_media()
        return True

    def _credit(self, played: list[SentChunk[Utterance]]) -> None:
        for chunk in played:
            chunk.owner.bytes_played += chunk.n_bytes
            chunk.owner.settle()
        if played:
            self._wake.set()
            self._progress.set()
