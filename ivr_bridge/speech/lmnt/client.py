"""LMNT 1.1 speech session over ``websockets``: our own client, not a wrapper of the SDK.

What it adds over a bare socket, and why:
- every binary frame goes through a WAV-header stripper, because ``ulaw`` output carries a header
  whose placement and layout are undocumented, and Twilio must never play header bytes;
- an audio gate: from the moment ``reset()`` is called until the ``reset_complete`` of the latest
  reset nonce, every binary frame is discarded (and audio already queued but not yet consumed is
  purged), so barge-in never leaks a syllable of the abandoned utterance;
- word timestamps normalised to seconds from the start of the current utterance (see
  ``TimestampMode``), so the conductor can tell which words the caller heard;
- typed endings: an error envelope raises ``SpeechSessionError``; any end of the socket before
  ``finish`` (or a close other than 1000 after it) raises ``SpeechSessionClosed``.

The API key travels only inside the init message: it is not stored on the session, never logged,
and the websockets wire logger is pinned above DEBUG so frame dumps cannot print it either.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType

import structlog
from pydantic import SecretStr
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from ivr_bridge.audio.codec import SAMPLE_RATE
from ivr_bridge.audio.wav import MULAW_8K_MONO, WavFormatError, WavHeaderStripper
from ivr_bridge.speech.lmnt.protocol import (
    ClientMessage,
    ErrorMessage,
    FinishMessage,
    FlushCompleteMessage,
    FlushMessage,
    InitMessage,
    LmntProtocolError,
    ReadyMessage,
    ResetCompleteMessage,
    ResetMessage,
    TextMessage,
    TimestampsMessage,
    WordTimestamp,
    parse_server_message,
)
from ivr_bridge.speech.lmnt.url import session_url
from ivr_bridge.speech.session import (
    FlushComplete,
    ResetComplete,
    SessionReady,
    SpeechAudio,
    SpeechEvent,
    SpeechSessionClosed,
    SpeechSessionError,
    SpeechTimestamps,
    WordTiming,
)

log = structlog.get_logger(__name__)

_WIRE_LOGGER = logging.getLogger("ivr_bridge.speech.lmnt.wire")
# websockets dumps frame contents at DEBUG, and the first frame holds the API key: keep this
# logger at INFO whatever the root level is.
_WIRE_LOGGER.setLevel(logging.INFO)

EVENT_QUEUE_SIZE = 256
"""Events buffered for the consumer; when full the receive loop waits (TCP backpressure)."""


class TimestampMode(StrEnum):
    """How the server's word ``start`` values are counted.

    Convention shared with our speech server: each ``timestamps`` message is sent right BEFORE the
    audio chunk it describes.
    """

    PER_CHUNK = "per_chunk"
    """LMNT 1.1 docs: ``start`` restarts at 0 for each audio chunk. The client adds the audio
    already received in the utterance (bytes / 8000) to get utterance time."""
    CUMULATIVE = "cumulative"
    """SDK 2.13 / API 1.2: ``start`` already counts from the last flush/reset; passed through."""


@dataclass(frozen=True, slots=True)
class _Queued:
    epoch: int
    """Reset epoch at receipt: audio from an older epoch is purged, never handed out."""
    event: SpeechEvent


class LmntSession:
    """One LMNT speech session (implements ``ivr_bridge.speech.session.SpeechSession``).

    Create it with ``connect_lmnt``. ``events()`` must have a single consumer.
    """

    def __init__(
        self,
        ws: ClientConnection,
        *,
        url: str,
        voice: str,
        timestamp_mode: TimestampMode = TimestampMode.PER_CHUNK,
        on_first_audio_latency: Callable[[float], None] | None = None,
        on_closed: Callable[[], None] | None = None,
    ) -> None:
        self.url = url
        self.voice = voice
        self.timestamp_mode = timestamp_mode
        self.request_id: str | None = None
        self.last_first_audio_latency_s: float | None = None
        """Seconds from ``flush()`` (or the first ``send_text`` after idle) to the first audio
        byte of the utterance; updated once per utterance."""
        self.dropped_after_reset_bytes = 0
        """Bytes of binary frames received between a ``reset`` and the ack of the latest one."""
        self.purged_queued_bytes = 0
        """Audio bytes received before a ``reset`` but not yet consumed: purged, never yielded."""
        self._ws = ws
        self._on_first_audio_latency = on_first_audio_latency
        self._on_closed = on_closed
        self._send_lock = asyncio.Lock()
        self._nonce = 0
        self._pending_reset_nonce: int | None = None
        self._epoch = 0
        self._stripper = WavHeaderStripper(expected=MULAW_8K_MONO)
        self._utterance_bytes = 0
        self._latency_mark: float | None = None
        self._finish_sent = False
        self._closed = False
        self._receiver_done = False
        self._failure: SpeechSessionError | None = None
        self._queue: asyncio.Queue[_Queued | None] = asyncio.Queue(maxsize=EVENT_QUEUE_SIZE)
        self._log = log.bind(url=url)
        self._receiver = asyncio.create_task(self._receive_loop(), name="lmnt-session-receive")

    def __repr__(self) -> str:
        return (
            f"LmntSession(url={self.url!r}, voice={self.voice!r}, request_id={self.request_id!r})"
        )

    async def __aenter__(self) -> LmntSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def audio_gate_open(self) -> bool:
        """False between ``reset()`` and the ack of the latest reset nonce."""
        return self._pending_reset_nonce is None

    @property
    def queued_events(self) -> int:
        """Events received but not yet consumed (a diagnostic; stale audio is purged on read)."""
        return self._queue.qsize()

    # ------------------------------------------------------------------ sending

    async def send_text(self, text: str) -> None:
        if self._latency_mark is None and self._utterance_bytes == 0:
            self._latency_mark = asyncio.get_running_loop().time()
        await self._send(TextMessage(text=text))

    async def flush(self) -> int:
        if self._utterance_bytes == 0:
            self._latency_mark = asyncio.get_running_loop().time()
        nonce = self._next_nonce()
        await self._send(FlushMessage(nonce=nonce))
        return nonce

    async def reset(self) -> int:
        # Close the gate before waiting for the send lock: barge-in must silence audio at once.
        nonce = self._next_nonce()
        self._pending_reset_nonce = nonce
        self._epoch += 1
        self._stripper.reset()
        self._utterance_bytes = 0
        self._latency_mark = None
        self._log.debug("lmnt.reset", nonce=nonce)
        await self._send(ResetMessage(nonce=nonce))
        return nonce

    async def finish(self) -> None:
        self._finish_sent = True
        await self._send(FinishMessage())

    async def close(self) -> None:
        """Stop receiving and close the socket; a pending ``events()`` then ends normally.

        The socket is closed on every path, including when the task calling ``close`` is being
        cancelled (a caller hanging up cancels the call mid-teardown): a session left open here
        is kept alive by keepalive pings forever, with its fd and tasks on both ends. A second
        cancellation during the close handshake aborts the TCP connection instead of waiting.
        """
        if self._closed:
            return
        self._closed = True
        self._receiver.cancel()
        try:
            # ``wait`` never raises the receiver's own CancelledError, only ours.
            await asyncio.wait({self._receiver})
        finally:
            try:
                await self._ws.close()
            except BaseException:
                self._ws.transport.abort()
                raise
            finally:
                if self._on_closed is not None:
                    self._on_closed()

    def _next_nonce(self) -> int:
        self._ensure_can_send()
        self._nonce += 1
        return self._nonce

    def _ensure_can_send(self) -> None:
        if self._closed:
            raise SpeechSessionClosed(None, "session closed by the client", self.request_id)

    async def _send(self, message: ClientMessage) -> None:
        """Serialized send: whole messages, in call order (asyncio.Lock is FIFO)."""
        self._ensure_can_send()
        async with self._send_lock:
            try:
                await self._ws.send(message.to_json())
            except ConnectionClosed as exc:
                raise self._failure or self._closed_error(exc) from exc

    # ------------------------------------------------------------------ receiving

    async def events(self) -> AsyncIterator[SpeechEvent]:
        """Events in arrival order; see ``SpeechSession.events``."""
        while True:
            if self._receiver_done and self._queue.empty():
                break
            item = await self._queue.get()
            if item is None:
                continue
            event = item.event
            if item.epoch != self._epoch and isinstance(event, SpeechAudio | SpeechTimestamps):
                if isinstance(event, SpeechAudio):
                    self.purged_queued_bytes += len(event.data)
                continue
            yield event
        if self._failure is not None:
            raise self._failure

    async def _receive_loop(self) -> None:
        try:
            while True:
                try:
                    message = await self._ws.recv()
                except ConnectionClosed as exc:
                    self._failure = self._close_outcome(exc)
                    return
                if isinstance(message, bytes):
                    await self._on_binary(message)
                else:
                    await self._on_text(message)
        except SpeechSessionError as exc:
            self._failure = exc
            self._log.warning(
                "lmnt.session_failed",
                error_type=exc.error_type,
                message=exc.message,
                request_id=exc.request_id,
            )
            await self._ws.close()
        except Exception as exc:  # a bug here must not look like a clean end of speech
            self._log.exception("lmnt.receive_loop_crashed")
            self._failure = SpeechSessionError("internal_error", repr(exc), self.request_id)
            await self._ws.close()
        finally:
            self._receiver_done = True
            try:
                self._queue.put_nowait(None)  # wake a waiting consumer
            except asyncio.QueueFull:
                pass  # the consumer is not waiting: it will drain and see _receiver_done

    def _close_outcome(self, exc: ConnectionClosed) -> SpeechSessionError | None:
        code = exc.rcvd.code if exc.rcvd is not None else None
        if self._finish_sent and code == 1000:
            self._log.info("lmnt.session_finished", request_id=self.request_id)
            return None
        error = self._closed_error(exc)
        self._log.warning(
            "lmnt.session_closed_early",
            code=error.code,
            reason=error.reason,
            finish_sent=self._finish_sent,
            request_id=self.request_id,
        )
        return error

    def _closed_error(self, exc: ConnectionClosed) -> SpeechSessionClosed:
        if exc.rcvd is not None:
            return SpeechSessionClosed(exc.rcvd.code, exc.rcvd.reason, self.request_id)
        return SpeechSessionClosed(None, "connection lost without a close frame", self.request_id)

    async def _emit(self, event: SpeechEvent) -> None:
        await self._queue.put(_Queued(self._epoch, event))

    async def _on_binary(self, frame: bytes) -> None:
        if self._pending_reset_nonce is not None:
            self.dropped_after_reset_bytes += len(frame)
            return
        try:
            audio = self._stripper.feed(frame)
        except WavFormatError as exc:
            raise SpeechSessionError("unsupported_audio_format", str(exc), self.request_id) from exc
        await self._emit_audio(audio)

    async def _emit_audio(self, audio: bytes) -> None:
        if not audio:
            return
        if self._latency_mark is not None:
            latency = asyncio.get_running_loop().time() - self._latency_mark
            self._latency_mark = None
            self.last_first_audio_latency_s = latency
            self._log.debug("lmnt.first_audio", latency_s=round(latency, 4))
            if self._on_first_audio_latency is not None:
                self._on_first_audio_latency(latency)
        self._utterance_bytes += len(audio)
        await self._emit(SpeechAudio(audio))

    async def _on_text(self, text: str) -> None:
        try:
            message = parse_server_message(text)
        except LmntProtocolError as exc:
            raise SpeechSessionError("protocol_error", str(exc), self.request_id) from exc
        match message:
            case ReadyMessage(request_id=request_id):
                self.request_id = request_id
                self._log = self._log.bind(request_id=request_id)
                self._log.info("lmnt.ready")
                await self._emit(SessionReady(request_id or ""))
            case TimestampsMessage(timestamps=words):
                if self._pending_reset_nonce is None and words:
                    await self._emit(SpeechTimestamps(self._normalise(words)))
            case FlushCompleteMessage(nonce=nonce):
                if self._pending_reset_nonce is None:
                    await self._emit_audio(self._stripper.drain())
                    self._utterance_bytes = 0
                    self._latency_mark = None
                await self._emit(FlushComplete(nonce))
            case ResetCompleteMessage(nonce=nonce):
                if nonce == self._pending_reset_nonce:
                    self._pending_reset_nonce = None
                    self._stripper.reset()
                    self._utterance_bytes = 0
                await self._emit(ResetComplete(nonce))
            case ErrorMessage(error=body, request_id=request_id):
                raise SpeechSessionError(body.type, body.message, request_id or self.request_id)
            case _:
                self._log.debug("lmnt.unknown_message", message_type=message.type)

    def _normalise(self, words: list[WordTimestamp]) -> tuple[WordTiming, ...]:
        offset = 0.0
        if self.timestamp_mode is TimestampMode.PER_CHUNK:
            offset = self._utterance_bytes / SAMPLE_RATE
        return tuple(WordTiming(w.text, w.start + offset, w.duration) for w in words)


async def connect_lmnt(
    *,
    base_url: str,
    api_key: str,
    voice: str,
    language: str = "en",
    return_timestamps: bool = True,
    open_timeout: float = 5.0,
    timestamp_mode: TimestampMode = TimestampMode.PER_CHUNK,
    on_first_audio_latency: Callable[[float], None] | None = None,
    on_closed: Callable[[], None] | None = None,
) -> LmntSession:
    """Open a session and send init (µ-law, 8 kHz, API 1.1). Does not wait for ``ready``: like
    the SDK, text may be sent at once; ``SessionReady`` arrives as the first event.

    Raises ``SpeechSessionError("connection_error", …)`` when the socket cannot be opened.
    """
    url = session_url(base_url)
    init = InitMessage(
        api_key=SecretStr(api_key),
        voice=voice,
        language=language,
        return_timestamps=return_timestamps,
    )
    log.info("lmnt.connecting", url=url, voice=voice, language=language)
    try:
        ws = await connect(
            url,
            open_timeout=open_timeout,
            close_timeout=2.0,
            # µ-law barely compresses; deflate would only cost CPU per call.
            compression=None,
            logger=_WIRE_LOGGER,
        )
    except (OSError, TimeoutError, WebSocketException) as exc:
        raise SpeechSessionError("connection_error", f"could not open {url}: {exc}") from exc
    try:
        await ws.send(init.to_json())
    except ConnectionClosed as exc:
        await ws.close()
        raise SpeechSessionClosed(
            exc.rcvd.code if exc.rcvd else None, exc.rcvd.reason if exc.rcvd else "", None
        ) from exc
    except BaseException:  # cancelled mid-open (the caller hung up): never leave the socket
        ws.transport.abort()
        raise
    return LmntSession(
        ws,
        url=url,
        voice=voice,
        timestamp_mode=timestamp_mode,
        on_first_audio_latency=on_first_audio_latency,
        on_closed=on_closed,
    )
