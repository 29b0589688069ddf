"""Deepgram as one live stream per call: every inbound frame goes up one WebSocket, opened once.

``DeepgramTranscriber`` opens a connection per finished utterance (a TLS + WebSocket handshake
on every turn, while the caller waits). ``DeepgramLive`` keeps one ``/v1/listen`` stream open for
the whole call, with ``interim_results=true``, ``endpointing`` and ``utterance_end_ms``, and feeds
it every 20 ms µ-law frame as it arrives (``feed``); a turn's words are then already transcribed,
or one ``Finalize`` away, when the turn ends (``transcript``).

Clocks. Deepgram's times (``start``, ``duration``, word ``start``/``end``) are seconds of audio
*received on that connection*. The call's frames carry call milliseconds. The mapping is kept
exact: the call ms of the first byte sent on a connection is its origin, and a gap in the
frames' times (lost frames, or the caller not being listened to) is sent as µ-law silence
(``0xFF``), so byte ``n`` of the stream is always call ms ``origin + n / 8``. After a reconnect
the mapping restarts at the first byte sent on the new connection; the audio that Deepgram had
not finalised yet is sent again (``replay_ms`` of it at most), so no word is lost to a drop.

Turns (``stt.live_words``). Final results are kept on the call clock; ``transcript(start_ms,
end_ms)`` returns the words (by their mid-time) of the caller's turn: each word belongs to
exactly one turn, so a final result that straddles two utterances is split between them by its
word times, never lost or given to both. Asking again with the same ``start_ms`` (a longer
utterance after a pause) is the same turn.

Never blocking. ``feed`` is synchronous: it appends to a bounded queue that a sender task
drains. When the queue is full (Deepgram too slow or down) the frame is dropped and counted
(``stats.dropped_frames``), logged once per episode, and the connection is treated as broken
(torn down and reconnected). Errors are ``DeepgramError`` naming what happened; the API key is
sent only in the ``Authorization: Token`` header and never logged or put in a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from ivr_bridge.recognition.models import Transcription
from ivr_bridge.stt.deepgram import DEFAULT_URL, DeepgramError
from ivr_bridge.stt.live_words import (
    BYTES_PER_MS,
    COVER_SLACK_MS,
    Epoch,
    LiveWords,
    Replay,
    parse_results,
)

log = structlog.get_logger(__name__)

SILENCE = b"\xff"
"""µ-law silence (the code for a zero sample)."""
SEND_BYTES = 1600
"""At most 200 ms of audio per binary message (a backlog or a gap goes in a few messages)."""


@dataclass(slots=True)
class LiveStats:
    connections: int = 0
    """WebSocket connections opened (1 for a call without a drop)."""
    reconnects: int = 0
    """Connections opened again after a drop or an overflow."""
    dropped_frames: int = 0
    """Frames ``feed`` refused because the queue to Deepgram was full."""
    filled_ms: float = 0.0
    """Gaps in the frames' times sent as silence, so the two clocks stay aligned."""
    keepalives: int = 0
    finalizes: int = 0


class _Dropped(Exception):
    """The connection ended without the closing ``Metadata``; the reason is the message."""


@dataclass(slots=True)
class _Served:
    clean: bool
    reason: str = ""


class DeepgramLive:
    """One Deepgram live stream for one call (see the module docstring)."""

    def __init__(
        self,
        api_key: str,
        *,
        url: str = DEFAULT_URL,
        model: str = "nova-3",
        language: str = "en-US",
        endpointing_ms: int = 300,
        utterance_end_ms: int = 1000,
        vad_events: bool = False,
        connect_timeout_s: float = 3.0,
        result_timeout_s: float = 5.0,
        close_timeout_s: float = 2.0,
        keepalive_s: float = 4.0,
        max_queue_frames: int = 250,
        max_reconnects: int = 3,
        reconnect_backoff_s: float = 0.25,
        replay_ms: float = 10_000.0,
    ) -> None:
        """``endpointing_ms``: the silence after which Deepgram marks a result ``speech_final``
        (Deepgram's default is 10 ms; 300 suits callers who pause mid-thought).
        ``utterance_end_ms``: the word gap after which Deepgram sends ``UtteranceEnd``.
        ``keepalive_s``: a ``KeepAlive`` goes after this long without audio (Deepgram closes a
        stream idle for 10 s). ``max_queue_frames``: frames waiting for the sender (250 = 5 s)
        before ``feed`` drops. ``max_reconnects``: drops survived per call, each reconnected
        after ``reconnect_backoff_s`` (doubled for the one retry of a failed reconnect)."""
        self._api_key = api_key
        self._url = url
        self._model = model
        self._language = language
        self._endpointing_ms = endpointing_ms
        self._utterance_end_ms = utterance_end_ms
        self._vad_events = vad_events
        self._connect_timeout_s = connect_timeout_s
        self._result_timeout_s = result_timeout_s
        self._close_timeout_s = close_timeout_s
        self._keepalive_s = keepalive_s
        self._max_queue = max_queue_frames
        self._max_reconnects = max_reconnects
        self._backoff_s = reconnect_backoff_s
        self._replay_ms = replay_ms
        self.engine = f"deepgram:{model}"
        self.stats = LiveStats()

        self._pending: deque[tuple[float, bytes]] = deque()
        self._wake = asyncio.Event()
        self._broken = asyncio.Event()
        self._connected = asyncio.Event()
        self._progress = asyncio.Event()
        self._fed_until_ms: float | None = None
        self._replay = Replay()
        self._words = LiveWords()
        self.speech_started_ms: list[float] = []
        """Deepgram's ``SpeechStarted`` times (call ms), when ``vad_events`` is on."""
        self.interim: tuple[str, float] = ("", 0.0)
        """The latest interim transcript and the call ms it reaches (for display/debugging)."""
        self._finalize_ms: float | None = None
        self._failure: DeepgramError | None = None
        self._closing = False
        self._close_sent = False
        self._overflow_logged = False
        self._task: asyncio.Task[None] | None = None

    # --- public ------------------------------------------------------------------------------

    def listen_url(self) -> str:
        query = {
            "encoding": "mulaw",
            "sample_rate": 8000,
            "channels": 1,
            "model": self._model,
            "language": self._language,
            "punctuate": "true",
            "smart_format": "true",
            "interim_results": "true",
            "endpointing": self._endpointing_ms,
            "utterance_end_ms": self._utterance_end_ms,
            "vad_events": "true" if self._vad_events else "false",
        }
        return f"{self._url}?{urlencode(query)}"

    async def start(self) -> None:
        """Open the stream now (before the caller's first frame); ``DeepgramError`` if refused."""
        self._ensure_running()
        deadline = self._connect_timeout_s * 2 + self._backoff_s * 2 + 1.0
        connected = asyncio.ensure_future(self._connected.wait())
        try:
            while not self._connected.is_set():
                if self._failure is not None:
                    raise self._failure
                progress = asyncio.ensure_future(self._progress.wait())
                done, _ = await asyncio.wait(
                    {connected, progress}, timeout=deadline, return_when=asyncio.FIRST_COMPLETED
                )
                progress.cancel()
                if not done:
                    raise DeepgramError("the Deepgram live stream did not open in time")
        finally:
            connected.cancel()

    def feed(self, at_ms: float, ulaw: bytes) -> None:
        """One inbound frame (call ms of its first sample); never blocks, never raises."""
        if not ulaw or self._closing or self._failure is not None:
            return
        self._ensure_running()
        if len(self._pending) >= self._max_queue:
            self.stats.dropped_frames += 1
            if not self._overflow_logged:
                self._overflow_logged = True
                log.warning(
                    "deepgram live queue full: dropping audio, reconnecting",
                    queued_frames=len(self._pending),
                )
            self._broken.set()
            return
        self._pending.append((at_ms, ulaw))
        end_ms = at_ms + len(ulaw) / BYTES_PER_MS
        if self._fed_until_ms is None or end_ms > self._fed_until_ms:
            self._fed_until_ms = end_ms
        self._wake.set()

    async def transcript(self, start_ms: float, end_ms: float) -> Transcription:
        """The caller's words between two call times, once Deepgram's finals cover ``end_ms``."""
        started = time.perf_counter()
        if self._failure is not None:
            raise self._failure
        if self._fed_until_ms is not None:
            target = min(end_ms, self._fed_until_ms)
            if not self._words.covered(target):
                await self._finalize_and_wait(target)
        text, confidence = self._words.collect(start_ms, end_ms)
        return Transcription(text, confidence, self.engine, (time.perf_counter() - started) * 1000)

    def speech_final_at(self, end_ms: float) -> bool:
        """Deepgram says the utterance ended (``LiveWords.speech_final_at``)."""
        return self._words.speech_final_at(end_ms)

    @property
    def final_until_ms(self) -> float | None:
        """How far (call ms) Deepgram's final results reach."""
        return self._words.final_until_ms

    async def close(self) -> None:
        """``CloseStream``, then Deepgram's closing ``Metadata`` (bounded); nothing left running."""
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(task), timeout=self._close_timeout_s + 0.5)
        if not task.done():
            log.warning("deepgram live stream did not close in time; cancelled")
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    # --- the connection ------------------------------------------------------------------------

    def _ensure_running(self) -> None:
        if self._task is None and not self._closing:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        drops = 0
        reason = ""
        while not self._closing:
            ws = await self._connect(first=self.stats.connections == 0)
            if ws is None:
                return
            if self.stats.connections:
                self.stats.reconnects += 1
                log.info("deepgram live stream reconnected", reconnects=self.stats.reconnects)
            self.stats.connections += 1
            self._connected.set()
            self._notify()
            served = await self._serve(ws)
            if served.clean or self._closing:
                return
            drops += 1
            reason = served.reason
            if drops > self._max_reconnects:
                self._fail(f"the Deepgram live stream dropped {drops} times ({reason}); giving up")
                return
            log.warning("deepgram live stream dropped; reconnecting", reason=reason, drops=drops)
            await asyncio.sleep(self._backoff_s)

    async def _connect(self, *, first: bool) -> ClientConnection | None:
        headers = {"Authorization": f"Token {self._api_key}"}
        attempts = 2  # a failed (re)connect is tried once more, after a longer backoff
        for attempt in range(attempts):
            if self._closing:
                return None
            try:
                return await connect(
                    self.listen_url(),
                    additional_headers=headers,
                    open_timeout=self._connect_timeout_s,
                    close_timeout=self._close_timeout_s,
                    max_size=1 << 20,
                    compression=None,  # µ-law audio hardly compresses; deflate costs CPU per call
                )
            except InvalidStatus as exc:
                response = exc.response
                why = response.headers.get("dg-error") or response.reason_phrase
                hint = " (check DEEPGRAM_API_KEY)" if response.status_code in (401, 403) else ""
                self._fail(f"Deepgram refused the stream: HTTP {response.status_code} {why}{hint}")
                return None
            except (OSError, WebSocketException, TimeoutError) as exc:
                what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if attempt + 1 >= attempts:
                    verb = "open" if first else "reopen"
                    self._fail(f"could not {verb} the Deepgram live stream: {what}")
                    return None
                await asyncio.sleep(self._backoff_s * 2)
        return None

    async def _serve(self, ws: ClientConnection) -> _Served:
        epoch = Epoch()
        self._broken.clear()
        self._overflow_logged = False
        self._close_sent = False
        replay = self._replay.take(self._words.final_until_ms)
        self._pending.extendleft(reversed(replay))
        sender = asyncio.ensure_future(self._send_loop(ws, epoch))
        receiver = asyncio.ensure_future(self._receive_loop(ws, epoch))
        broken = asyncio.ensure_future(self._broken.wait())
        tasks: set[asyncio.Future[Any]] = {sender, receiver, broken}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if broken in done:
                ws.transport.abort()  # it does not read: a closing handshake would not get by
                return _Served(False, "the queue to Deepgram overflowed")
            if sender in done and sender.exception() is None and self._close_sent:
                # CloseStream is sent: the receiver ends at the closing Metadata.
                await asyncio.wait({receiver}, timeout=self._close_timeout_s)
                done = {receiver} if receiver.done() else set()
            if receiver in done and receiver.exception() is None and receiver.result():
                return _Served(True)
            for ended in (receiver, sender):
                if ended.done() and not ended.cancelled() and ended.exception() is not None:
                    return _Served(False, str(ended.exception()))
            return _Served(False, "the connection closed")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), timeout=self._close_timeout_s)

    async def _send_loop(self, ws: ClientConnection, epoch: Epoch) -> None:
        loop = asyncio.get_running_loop()
        last_sent = loop.time()
        try:
            while True:
                if self._finalize_due(epoch):
                    assert self._finalize_ms is not None
                    epoch.finalize_sent_ms = self._finalize_ms
                    await ws.send(json.dumps({"type": "Finalize"}))
                    self.stats.finalizes += 1
                    last_sent = loop.time()
                    continue
                if not self._pending:
                    if self._closing:
                        self._close_sent = True
                        await ws.send(json.dumps({"type": "CloseStream"}))
                        return
                    self._wake.clear()
                    idle = self._keepalive_s - (loop.time() - last_sent)
                    if idle <= 0:
                        await ws.send(json.dumps({"type": "KeepAlive"}))
                        self.stats.keepalives += 1
                        last_sent = loop.time()
                        continue
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=idle)
                    continue
                start_ms, chunk = self._take_chunk(epoch)
                self._replay.add(start_ms, chunk, self._replay_ms)
                await ws.send(chunk)
                last_sent = loop.time()
        except (OSError, WebSocketException) as exc:
            raise _Dropped(f"sending failed: {type(exc).__name__}") from None

    def _take_chunk(self, epoch: Epoch) -> tuple[float, bytes]:
        """Up to ``SEND_BYTES`` of queued audio, gaps filled with silence, overlaps trimmed."""
        out = bytearray()
        if epoch.origin_ms is None:
            epoch.origin_ms = self._pending[0][0]
        start_ms = epoch.origin_ms + epoch.sent_bytes / BYTES_PER_MS
        while self._pending and len(out) < SEND_BYTES:
            at_ms, data = self._pending[0]
            expected_ms = start_ms + len(out) / BYTES_PER_MS
            gap = round((at_ms - expected_ms) * BYTES_PER_MS)
            if gap > 0:  # frames missing: silence keeps byte n at call ms origin + n / 8
                fill = min(gap, SEND_BYTES - len(out))
                out.extend(SILENCE * fill)
                self.stats.filled_ms += fill / BYTES_PER_MS
                continue
            if gap < 0:  # a frame repeated or overlapping: its earlier part was already sent
                self._pending.popleft()
                if -gap < len(data):
                    self._pending.appendleft((expected_ms, data[-gap:]))
                continue
            self._pending.popleft()
            out.extend(data)
        epoch.sent_bytes += len(out)
        return start_ms, bytes(out)

    async def _receive_loop(self, ws: ClientConnection, epoch: Epoch) -> bool:
        """Deepgram's messages until the socket ends; True when it was the closing Metadata."""
        error = ""
        try:
            async for raw in ws:
                if isinstance(raw, bytes):
                    continue
                message = _parse(raw)
                kind = message.get("type")
                if kind == "Results":
                    self._on_results(message, epoch)
                elif kind == "UtteranceEnd":
                    if epoch.origin_ms is not None and message.get("last_word_end") is not None:
                        self._words.utterance_end(epoch.call_ms(float(message["last_word_end"])))
                        self._notify()
                elif kind == "SpeechStarted":
                    if epoch.origin_ms is not None and message.get("timestamp") is not None:
                        self.speech_started_ms.append(epoch.call_ms(float(message["timestamp"])))
                elif kind == "Metadata":
                    if self._close_sent:
                        return True
                elif kind == "Error":
                    error = str(message.get("description") or message.get("message") or "")
                    log.warning("deepgram live stream error", description=error)
        except ConnectionClosed:
            pass  # said below, with Deepgram's close code and reason
        except (OSError, WebSocketException) as exc:
            raise _Dropped(f"receiving failed: {type(exc).__name__}") from None
        if ws.close_code is not None:
            why = ws.close_reason or error
            raise _Dropped(f"Deepgram closed the stream: {ws.close_code} {why}".strip())
        raise _Dropped(f"the connection to Deepgram was lost{f' ({error})' if error else ''}")

    def _on_results(self, message: dict[str, Any], epoch: Epoch) -> None:
        if epoch.origin_ms is None:
            return
        final, transcript, end_ms = parse_results(message, epoch)
        if final is None:
            self.interim = (transcript, end_ms)
            return
        if self._words.add(final):
            self._replay.finalised_until(end_ms)
        self.interim = ("", end_ms)
        self._notify()

    # --- turns -------------------------------------------------------------------------------

    def _finalize_due(self, epoch: Epoch) -> bool:
        target = self._finalize_ms
        if target is None or target <= epoch.finalize_sent_ms or self._words.covered(target):
            return False
        sent_to = epoch.end_ms
        return sent_to is not None and sent_to >= target - COVER_SLACK_MS

    async def _finalize_and_wait(self, target_ms: float) -> None:
        if self._finalize_ms is None or target_ms > self._finalize_ms:
            self._finalize_ms = target_ms
        self._wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._result_timeout_s
        while not self._words.covered(target_ms):
            if self._failure is not None:
                raise self._failure
            if self._task is None or self._task.done():
                raise DeepgramError("the Deepgram live stream is closed: no final transcript")
            remaining = deadline - loop.time()
            if remaining <= 0:
                reached = self._words.final_until_ms
                raise DeepgramError(
                    f"no final transcript from Deepgram up to call {target_ms:.0f} ms within "
                    f"{self._result_timeout_s:g} s (finals reach "
                    f"{'nothing' if reached is None else f'{reached:.0f} ms'})"
                )
            progress = self._progress
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(progress.wait(), timeout=remaining)

    # --- state -------------------------------------------------------------------------------

    def _notify(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    def _fail(self, message: str) -> None:
        self._failure = DeepgramError(message)
        self._pending.clear()
        log.warning("deepgram live stream failed", error=message)
        self._notify()


def _parse(raw: str) -> dict[str, Any]:
    try:
        message = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return message if isinstance(message, dict) else {}
