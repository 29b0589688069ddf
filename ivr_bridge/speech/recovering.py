"""A speech session that outlives its socket: stalls and lost connections are repaired mid-call.

A call must not sit in dead air, nor end in an apology, because one speech session went wrong: a
speech server restarted, a socket went quiet, a ``reset`` was never acknowledged. This wrapper
implements ``SpeechSession`` over a series of real sessions and keeps the *journal*: the text
sent since the last completed flush (or reset), one segment per flush. When a session fails it
opens another and sends the journal again, minus the words whose audio already arrived (known
from word timestamps), so the caller hears the rest of the sentence, not its start twice. Flush
and reset nonces are its own, translated, so the call never sees the swap.

What counts as failed, and how long it may take to mend:

- the socket ended (a restart, a network blip): reconnect with backoff for up to
  ``reconnect_s``, so a speech server back within a few seconds costs the call nothing more;
- the socket is open but silent while audio is owed (a flushed segment still incomplete, or a
  ``reset`` not acknowledged) for ``stall_s``: replace it at once; the replacement must then
  deliver before ``silence_s`` has passed since the last event, or the call gives up (the
  conductor apologises), so a persistently stuck service costs the caller under two seconds;
- refusals (bad key, unknown voice, invalid request) are not retried: a new session would get
  the same answer.

One watchdog task per call checks for stalls; nothing is created per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import structlog

from ivr_bridge.speech.session import (
    FlushComplete,
    ResetComplete,
    SpeechAudio,
    SpeechEvent,
    SpeechSession,
    SpeechSessionClosed,
    SpeechSessionError,
    SpeechTimestamps,
    WordTiming,
)

log = structlog.get_logger(__name__)

STALL_S = 1.0
SILENCE_S = 1.7
RECONNECT_S = 5.0
RETRY_DELAYS_S = (0.0, 0.2, 0.4, 0.8)
"""Waits before each reconnect attempt; then once a second until ``reconnect_s`` runs out."""
NOT_RETRYABLE = frozenset(
    {
        "authentication_error",
        "not_found_error",
        "invalid_request_error",
        "unsupported_audio_format",
    }
)
AUDIO_BYTES_PER_S = 8000

T = TypeVar("T")
Opener = Callable[[], Awaitable[SpeechSession]]
Recorder = Callable[..., None]


@dataclass(slots=True)
class _Segment:
    """Text up to one flush (the last segment is still open)."""

    pieces: list[str] = field(default_factory=list)
    nonce: int | None = None
    """Our flush nonce, once flushed."""


class _Stalled(SpeechSessionError):
    def __init__(self, quiet_s: float) -> None:
        super().__init__("stalled", f"speech service sent nothing for {quiet_s:.1f} s while owed")


class RecoveringSpeech:
    """Implements ``ivr_bridge.speech.session.SpeechSession``; ``events()`` has one consumer."""

    def __init__(
        self,
        session: SpeechSession,
        reopen: Opener,
        *,
        stall_s: float = STALL_S,
        silence_s: float = SILENCE_S,
        reconnect_s: float = RECONNECT_S,
        record_event: Recorder | None = None,
        on_recovery: Callable[[str], None] | None = None,
    ) -> None:
        self._session = session
        self._reopen = reopen
        self._stall_s = stall_s
        self._silence_s = silence_s
        self._reconnect_s = reconnect_s
        self._record = record_event or (lambda kind, **fields: None)
        self._on_recovery = on_recovery
        self._lock = asyncio.Lock()
        """Held for every send and for a swap, so a replay and new text never interleave."""
        self._journal: deque[_Segment] = deque([_Segment()])
        self._nonces = itertools.count(1)
        self._flushes: dict[int, int] = {}
        self._resets: dict[int, int] = {}
        """Real nonce → ours, for the current session."""
        self._virtual: deque[SpeechEvent] = deque()
        """Events we owe the consumer ourselves (a reset acknowledged while no session was up)."""
        self._head_audio_s = 0.0
        self._head_words: list[WordTiming] = []
        self._offset_s = 0.0
        """Added to the timestamps of a head segment a lost session had already partly spoken."""
        self._last_event = time.monotonic()
        self._owed_since = self._last_event
        self._stalled: _Stalled | None = None
        self._trial_until: float | None = None
        """A replacement is on trial: it must deliver before this (wall time) or the call gives
        up; None once it did."""
        self._closed = False
        self._finished = False
        self._watchdog: asyncio.Task[None] | None = None
        self.recoveries = 0

    # --- sending -------------------------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        async with self._lock:
            self._journal[-1].pieces.append(text)
            await self._try(self._session.send_text(text))

    async def flush(self) -> int:
        async with self._lock:
            nonce = next(self._nonces)
            self._now_owed()  # before the segment counts as owed: the wait starts now
            self._journal[-1].nonce = nonce
            self._journal.append(_Segment())
            real = await self._try(self._session.flush())
            if real is not None:
                self._flushes[real] = nonce
            return nonce

    async def reset(self) -> int:
        nonce = next(self._nonces)
        # The journal is void from this moment: none of it may be spoken again, even by a
        # replay already under way (which holds the lock; our reset follows it on the wire).
        self._journal = deque([_Segment()])
        self._clear_head()
        async with self._lock:
            self._now_owed()
            real = await self._try(self._session.reset())
            if real is None:  # no live session to ask: nothing of the old text can arrive
                self._virtual.append(ResetComplete(nonce))
            else:
                self._resets[real] = nonce
            return nonce

    async def finish(self) -> None:
        async with self._lock:
            self._finished = True
            await self._try(self._session.finish())

    async def close(self) -> None:
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        await self._session.close()

    async def _try(self, send: Awaitable[T]) -> T | None:
        """A send to a dead session is not an error here: the journal holds the text, and the
        failure surfaces in ``events()``, which mends the session and replays it."""
        try:
            return await send
        except SpeechSessionError:
            return None

    # --- receiving -----------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[SpeechEvent]:
        self._watchdog = self._watchdog or asyncio.create_task(self._watch(), name="speech-watch")
        while True:
            while self._virtual:
                yield self._virtual.popleft()
            failure: SpeechSessionError | None = None
            try:
                async for event in self._session.events():
                    translated = self._translate(event)
                    if translated is not None:
                        yield translated
                    while self._virtual:
                        yield self._virtual.popleft()
            except SpeechSessionError as exc:
                failure = exc
            if self._closed or (self._finished and failure is None and self._stalled is None):
                return
            cause = self._stalled or failure or SpeechSessionClosed(None, "session ended")
            await self._mend(cause)  # raises when it cannot: the call then apologises

    def _translate(self, event: SpeechEvent) -> SpeechEvent | None:
        self._last_event = time.monotonic()
        if self._trial_until is not None and isinstance(
            event, SpeechAudio | FlushComplete | ResetComplete
        ):
            self._trial_until = None
            self._record("speech_recovered", recoveries=self.recoveries)
        if isinstance(event, SpeechAudio):
            self._head_audio_s += len(event.data) / AUDIO_BYTES_PER_S
            return event
        if isinstance(event, SpeechTimestamps):
            if not self._offset_s:
                self._head_words.extend(event.words)
                return event
            words = tuple(
                WordTiming(w.text, w.start + self._offset_s, w.duration) for w in event.words
            )
            self._head_words.extend(words)
            return SpeechTimestamps(words)
        if isinstance(event, FlushComplete):
            nonce = self._flushes.pop(event.nonce, None)
            if nonce is None:
                return None  # of text a reset discarded
            while self._journal and self._journal[0].nonce != nonce:
                self._journal.popleft()
            if self._journal:
                self._journal.popleft()
            if not self._journal:
                self._journal.append(_Segment())
            self._clear_head()
            self._owed_since = self._last_event
            return FlushComplete(nonce)
        if isinstance(event, ResetComplete):
            nonce = self._resets.pop(event.nonce, None)
            return None if nonce is None else ResetComplete(nonce)
        return event

    # --- mending -------------------------------------------------------------------------------

    async def _mend(self, cause: SpeechSessionError) -> None:
        if cause.error_type in NOT_RETRYABLE or self._trial_until is not None:
            # Refused, or the replacement also failed to deliver in time: give up.
            self._give_up(cause)
        # A stall has already cost the caller silence: the whole repair must fit the silence
        # budget. A lost socket (a restart) may take longer to come back.
        if isinstance(cause, _Stalled):
            deadline = self._silence_started() + self._silence_s
        else:
            deadline = time.monotonic() + self._reconnect_s
        self._record("speech_mending", error=cause.error_type, message=cause.message)
        log.warning("speech session failed; opening another", error=str(cause))
        async with self._lock:
            self._stalled = None
            with contextlib.suppress(Exception):
                await self._session.close()
            for attempt in itertools.count():
                wait = RETRY_DELAYS_S[attempt] if attempt < len(RETRY_DELAYS_S) else 1.0
                if time.monotonic() + wait >= deadline:
                    self._give_up(cause)
                await asyncio.sleep(wait)
                try:
                    session = await self._reopen()
                except SpeechSessionError as exc:
                    if exc.error_type in NOT_RETRYABLE:
                        self._give_up(exc)
                    continue
                try:
                    await self._replay(session)
                except SpeechSessionError:
                    with contextlib.suppress(Exception):
                        await session.close()
                    continue
                except BaseException:  # the call ended mid-mend: never leave the new socket
                    with contextlib.suppress(Exception):
                        await asyncio.shield(session.close())
                    raise
                self._session = session
                break
        self.recoveries += 1
        self._count("recovered")
        if self._owed():  # on trial: the replacement must deliver in time, or the call gives up
            stalled = isinstance(cause, _Stalled)
            self._trial_until = deadline if stalled else time.monotonic() + self._stall_s
        else:
            self._record("speech_recovered", recoveries=self.recoveries)

    def _give_up(self, cause: SpeechSessionError) -> None:
        self._record("speech_lost", error=cause.error_type, recoveries=self.recoveries)
        self._count("failed")
        raise cause

    async def _replay(self, session: SpeechSession) -> None:
        self._flushes.clear()
        # A reset the lost session never acknowledged: its text is gone with that session.
        self._virtual.extend(ResetComplete(nonce) for nonce in self._resets.values())
        self._resets.clear()
        head = True
        for segment in list(self._journal):
            text = "".join(segment.pieces)
            if head and self._head_audio_s > 0:
                text = _unspoken(text, self._head_words, self._head_audio_s)
                self._offset_s = self._head_audio_s
            head = False
            if text.strip():
                await session.send_text(text)
            if segment.nonce is not None:
                self._flushes[await session.flush()] = segment.nonce

    def _count(self, result: str) -> None:
        if self._on_recovery is not None:
            self._on_recovery(result)

    # --- the watchdog --------------------------------------------------------------------------

    async def _watch(self) -> None:
        """Owned by ``events()``'s consumer; cancelled by ``close``."""
        tick = min(self._stall_s, self._silence_s) / 4
        while True:
            await asyncio.sleep(tick)
            if not self._owed() or self._lock.locked() or self._stalled is not None:
                continue
            now = time.monotonic()
            quiet = now - self._silence_started()
            late = self._trial_until is not None and now >= self._trial_until
            if late or (self._trial_until is None and quiet >= self._stall_s):
                log.error("speech service silent while audio is owed", quiet_s=round(quiet, 2))
                self._stalled = _Stalled(quiet)
                await self._session.close()  # ends its events(); events() then mends or gives up

    def _silence_started(self) -> float:
        """When the caller started waiting: the last event, or when audio became owed."""
        return max(self._last_event, self._owed_since)

    def _owed(self) -> bool:
        return bool(self._resets) or any(s.nonce is not None for s in self._journal)

    def _now_owed(self) -> None:
        if not self._owed():
            self._owed_since = time.monotonic()

    def _clear_head(self) -> None:
        self._head_audio_s = 0.0
        self._head_words = []
        self._offset_s = 0.0


def _unspoken(text: str, words: list[WordTiming], audio_s: float) -> str:
    """``text`` minus the words whose audio fully arrived (a half-arrived word is said again)."""
    spoken = sum(1 for w in words if w.start + w.duration <= audio_s + 1e-6)
    return " ".join(text.split()[spoken:])
