"""Playback: speech-session audio -> Twilio media frames, paced by what Twilio says it played.

Why pace at all: Twilio buffers whatever we send. A deep buffer means the caller keeps hearing
the bot after an interruption unless ``clear`` works perfectly, and "what was heard" drifts from
"what was sent". So audio is released only while it is at most ``lead_ms`` ahead of acknowledged
playback (mark echoes) and of where the wall clock says Twilio's playback must be, whichever is
nearer: a lost echo never slows the release below real time, and a mark whose echo never comes is
credited as played ``grace_ms`` after its audio should have ended.

Only this class writes media/mark/clear frames; the bot is *audible* exactly while Twilio holds
audio we sent and it has not confirmed as played.

It is also the one place that knows an *underrun* for certain: Twilio confirmed everything we sent
as played while the utterance it was playing still has audio to come (queued here or not yet
synthesised). The caller then hears silence inside an utterance because audio was late; a pause
between two utterances is not one.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from ivr_bridge.audio.codec import ULAW_BYTES_PER_MS
from ivr_bridge.call.marks import MarkLedger, SentChunk
from ivr_bridge.call.utterance import Utterance
from ivr_bridge.telephony.twilio.models import clear_json, mark_json, media_json

log = structlog.get_logger(__name__)

MIN_FRAME_BYTES = 20 * ULAW_BYTES_PER_MS
"""Never send a media frame shorter than 20 ms (one Twilio frame), except an utterance's tail."""

MAX_BUFFER_MS = 600_000
"""Synthesised audio held here before release (10 min = 4.8 MB of µ-law). Generous on purpose:
when it fills, the speech pump stops reading the speech session's socket, and a socket nobody
reads stops answering keepalive pings and is dropped — a long prompt must never get there."""

SendText = Callable[[str, str], Awaitable[None]]
"""Sends one JSON text frame to Twilio: ``send(event_name, json_text)``."""

OnUnderrun = Callable[[float], None]
"""Told the length (seconds) of each dry spell inside an utterance, when its audio resumes."""


@dataclass(frozen=True, slots=True)
class PlaybackSettings:
    """``IVR_PLAYBACK_*`` and ``IVR_MARK_GRACE_MS``, as one call's playback uses them."""

    chunk_ms: int = 100
    lead_ms: int = 300
    grace_ms: int = 1000
    start_ms: int = 200


class Playback:
    def __init__(
        self,
        send: SendText,
        stream_sid: str,
        *,
        chunk_ms: int = 100,
        lead_ms: int = 300,
        grace_ms: int = 1000,
        max_buffer_ms: int = MAX_BUFFER_MS,
        start_ms: int = 0,
        clock: Callable[[], float] = time.monotonic,
        on_first_media: Callable[[], None] | None = None,
        on_underrun: OnUnderrun | None = None,
        on_stale_frame: Callable[[], None] | None = None,
        on_sent: Callable[[Utterance, bytes], None] | None = None,
        on_clear: Callable[[], None] | None = None,
    ) -> None:
        """``on_sent``: told each media frame's audio as it goes to Twilio; ``on_clear``: told
        when a ``clear`` went out (the call's recording of what the caller heard)."""
        self._send = send
        self._stream_sid = stream_sid
        self._chunk_bytes = chunk_ms * ULAW_BYTES_PER_MS
        self._lead_bytes = lead_ms * ULAW_BYTES_PER_MS
        self._start_bytes = start_ms * ULAW_BYTES_PER_MS
        self._grace_s = grace_ms / 1000
        self._max_buffer_bytes = max_buffer_ms * ULAW_BYTES_PER_MS
        self._clock = clock
        self._on_first_media = on_first_media
        self._on_underrun = on_underrun
        self._on_stale_frame = on_stale_frame
        self._on_sent = on_sent
        self._on_clear = on_clear
        self._send_lock = asyncio.Lock()
        """A media frame and its mark go out as a pair that ``clear`` never splits, so no frame
        or mark of a cleared generation can follow a ``clear`` on the wire."""
        self._dry: tuple[Utterance, float] | None = None
        """The unfinished utterance Twilio ran out of audio for, and since when."""
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
        self._sent_since_clear = False
        """Audio went out since the last ``clear``: Twilio may still hold some of it."""
        self.clears_sent = 0
        self.underruns = 0
        self.underrun_s = 0.0
        self.stale_frames = 0
        """Frames of a cleared generation sent after its ``clear`` (a bug if ever non-zero)."""

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
        self._dry = None  # silence from here on is on purpose, not an underrun

    def resume(self) -> None:
        self._paused = False
        self._wake.set()

    async def clear(self) -> list[Utterance]:
        """Stop the bot now: empty Twilio's buffer and ours. Returns the utterances cut short."""
        cut: list[Utterance] = []
        async with self._send_lock:
            # Not only when marks are pending: a mark the wall-clock fallback credited may still
            # be audio in Twilio's buffer, and believing "all of it played" is how bots talk on.
            if self.ledger.pending or self._sent_since_clear:
                await self._send("clear", clear_json(self._stream_sid))
                self.clears_sent += 1
                if self._on_clear is not None:
                    self._on_clear()
            self._sent_since_clear = False
            cleared = self.ledger.on_clear()
        self._dry = None
        for chunk in cleared:
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
            if self._queue and not self._paused:
                # Echoes may be late or lost: the clock alone frees room at this moment.
                room_at = self._play_end - (self._lead_bytes - MIN_FRAME_BYTES) / (
                    ULAW_BYTES_PER_MS * 1000
                )
                by_clock = max(0.005, room_at - now)
                timeout = by_clock if timeout is None else min(timeout, by_clock)
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # lands while the event is being set, leaving the task unkillable at hang-up.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _release_one(self, now: float) -> bool:
        if self._paused or not self._queue:
            return False
        async with self._send_lock:
            return await self._release_locked(now)

    async def _release_locked(self, now: float) -> bool:
        if self._paused or not self._queue:  # re-check: clear may have run while we waited
            return False
        ahead = self._ahead_bytes(now)
        if ahead >= self._lead_bytes:
            return False
        utterance, buf = self._queue[0]
        take = min(len(buf), self._chunk_bytes)
        tail = utterance.synthesis_complete
        if utterance.bytes_sent == 0 and not tail and len(buf) < self._start_bytes:
            # Start an utterance with a cushion: a speech service streaming near real time
            # leaves only the gap between its chunks as margin, and a late chunk then stutters
            # the prompt's first word. Services that stream faster (or finish) start at once.
            return False
        # Below half the lead, send whatever we have (down to one 20 ms frame): at an utterance's
        # start a speech service streaming ~1.25x real time gives only a few ms of margin per
        # chunk, and holding back a sliver of it was what ran Twilio dry under load.
        starving = ahead < max(self._chunk_bytes, self._lead_bytes // 2)
        if take < self._chunk_bytes and not tail and not (starving and take >= MIN_FRAME_BYTES):
            return False  # wait for more audio rather than send a choppy sliver
        audio = bytes(buf[:take])
        del buf[:take]
        if not buf:
            self._queue.popleft()
        self._queued_bytes -= take
        self._room.set()
        self._end_dry_spell(utterance)
        self._play_end = max(self._play_end, now) + take / (ULAW_BYTES_PER_MS * 1000)
        chunk = self.ledger.next_mark(take, utterance, self._play_end)
        if self._on_sent is not None:
            self._on_sent(utterance, audio)
        await self._send("media", media_json(self._stream_sid, audio))
        if chunk.generation != self.ledger.generation:
            self._count_stale()  # unreachable while clear waits for the lock; counted if ever
        await self._send("mark", mark_json(self._stream_sid, chunk.mark))
        utterance.bytes_sent += take
        self.frames_sent += 1
        self._sent_since_clear = True
        if self.frames_sent == 1 and self._on_first_media is not None:
            self._on_first_media()
        return True

    def _ahead_bytes(self, now: float) -> int:
        """How far audio runs ahead of the caller's ear: unacknowledged audio, but never more
        than what can still be unplayed by the wall clock. Twilio plays in real time, so when
        echoes are lost (or late) the clock says the buffer drained and playback keeps real
        time; the acknowledged marks still decide what was heard."""
        unplayed_s = max(0.0, self._play_end - now)
        # In whole 20 ms frames, rounded up: the clock frees room a frame at a time.
        by_clock = math.ceil(unplayed_s * 1000 / 20) * MIN_FRAME_BYTES
        return min(self.ledger.unplayed_bytes, by_clock)

    def _count_stale(self) -> None:
        self.stale_frames += 1
        log.error("media frame of a cleared prompt sent after clear")
        if self._on_stale_frame is not None:
            self._on_stale_frame()

    def _end_dry_spell(self, utterance: Utterance) -> None:
        """Audio flows again: if Twilio had run dry inside this utterance, that was an underrun."""
        dry, self._dry = self._dry, None
        if dry is None or dry[0] is not utterance:
            return
        gap_s = max(0.0, self._clock() - dry[1])
        log.warning(
            "playback underrun: Twilio ran dry inside an utterance",
            gap_ms=round(gap_s * 1000, 1),
            utterance=utterance.id,
            played_ms=utterance.played_ms,
            received_ms=utterance.bytes_received / ULAW_BYTES_PER_MS,
            synthesis_complete=utterance.synthesis_complete,
        )
        self.underruns += 1
        self.underrun_s += gap_s
        if self._on_underrun is not None:
            self._on_underrun(gap_s)

    def _credit(self, played: list[SentChunk[Utterance]]) -> None:
        for chunk in played:
            chunk.owner.bytes_played += chunk.n_bytes
            chunk.owner.settle()
        if played:
            self._wake.set()
            self._progress.set()
            self._note_if_dry(played[-1].owner)

    def _note_if_dry(self, last_played: Utterance) -> None:
        """Twilio just played its last buffered chunk; mid-utterance that starts a dry spell."""
        if self.ledger.pending or self._paused or last_played.interrupted:
            return
        over = last_played.synthesis_complete
        if over and last_played.bytes_played >= last_played.bytes_received:
            return  # the utterance is over: silence now is a pause between utterances
        if self._dry is None:
            self._dry = (last_played, self._clock())
