"""One LMNT speech session over a WebSocket: receive loop, synthesis queue, paced sender.

Wire conventions this server commits to (LMNT leaves them open):

- ``timestamps`` frames are sent right BEFORE the binary audio frame they describe and list the
  words whose start falls inside that frame. API 1.1: ``start`` is relative to the start of that
  audio frame. API 1.2: ``start`` is cumulative since the last ``flush_complete`` or
  ``reset_complete`` (0 at session start). A word's duration runs to the next word's start.
- µ-law sessions carry a WAV header (see :mod:`audio_format`) glued to the front of the first
  audio frame of the session, of every utterance (after each flush/reset ack), or never, per
  ``SpeechServerConfig.wav_header``.
- ``reset`` stops synthesis and all queued audio at once and is acknowledged straight away; no
  audio of the discarded text follows ``reset_complete``. Flushes whose audio the reset cut short
  are acknowledged (in order) just before the ``reset_complete``, so no nonce is left hanging.
- ``finish`` speaks what is buffered, then the server closes with 1000. Errors are sent as LMNT's
  envelope and the socket is closed with 1008 (refused request) or 1011 (server fault).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from ivr_bridge.errors import SpeechError
from ivr_bridge.speechserver import protocol
from ivr_bridge.speechserver.audio_format import encode, ulaw_wav_header
from ivr_bridge.speechserver.config import SpeechServerConfig
from ivr_bridge.speechserver.engines import Synthesizer
from ivr_bridge.speechserver.faults import Faults
from ivr_bridge.speechserver.keys import CONFIG_KEY, SESSION_COUNT_KEY, SESSIONS_KEY, SYNTH_KEY
from ivr_bridge.speechserver.pipeline import (
    AudioChunk,
    FinishMark,
    FlushMark,
    Out,
    Segment,
    Work,
    chunk_audio,
)
from ivr_bridge.speechserver.protocol import ErrorType, InitMessage, LmntRequestRefused
from ivr_bridge.speechserver.synth import SynthesisError
from ivr_bridge.speechserver.text_buffer import TextBuffer
from ivr_bridge.speechserver.voices import get_voice

log = structlog.get_logger(__name__)

INIT_TIMEOUT_S = 30.0
OUTBOX_CHUNKS = 64


class _SessionEnded(SpeechError):
    """The session closed itself (fault injection, error); stop the pipeline."""


class StreamSession:
    """Owns one socket; every task it starts is cancelled when the socket goes away."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        config: SpeechServerConfig,
        synth: Synthesizer,
        session_number: int = 1,
    ) -> None:
        self._ws = ws
        self._config = config
        self._faults = Faults.for_session(config, session_number)
        self._stalled = False
        self._synth = synth
        self.request_id = protocol.new_request_id()
        self._log = log.bind(request_id=self.request_id)
        self._init: InitMessage | None = None
        self._text = TextBuffer()
        self._work: asyncio.Queue[Work] = asyncio.Queue()
        self._outbox: asyncio.Queue[Out] = asyncio.Queue(maxsize=OUTBOX_CHUNKS)
        self._send_lock = asyncio.Lock()
        self._producer: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._in_hand: dict[str, Work | Out | None] = {"producer": None, "sender": None}
        self._session_audio_s = 0.0
        self._turn_audio_s = 0.0
        self._header_due = config.wav_header != "none"
        self._finished = False
        self._ended = asyncio.Event()
        self._close_code: int = WSCloseCode.OK
        self._crashed = False

    async def run(self) -> None:
        """Serve until the client closes or the session ends itself (finish, error, fault)."""
        try:
            if await self._handshake():
                self._start_pipeline()
                await self._receive_until_ended()
        except LmntRequestRefused as exc:
            await self._fail(exc.error_type, exc.message)
        finally:
            await self._stop_pipeline()
            if self._crashed:
                await self._report_crash()
            if self._ended.is_set() and not self._ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError):
                    await self._ws.close(code=self._close_code)
            # A socket closed before init is a health probe: not worth an info line each time.
            (self._log.info if self._init else self._log.debug)(
                "session_closed", audio_s=round(self._session_audio_s, 3)
            )

    async def _receive_until_ended(self) -> None:
        receiver = asyncio.create_task(self._receive_loop(), name=f"{self.request_id}-recv")
        ended = asyncio.create_task(self._ended.wait())
        try:
            await asyncio.wait({receiver, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (receiver, ended):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ended
        try:
            await receiver
        except asyncio.CancelledError:
            if not self._ended.is_set():
                raise

    # --- receive side ---

    async def _handshake(self) -> bool:
        try:
            msg = await self._ws.receive(timeout=INIT_TIMEOUT_S)
        except TimeoutError as exc:
            raise LmntRequestRefused("invalid_request_error", "no init message received") from exc
        if msg.type != WSMsgType.TEXT:
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return False
            raise LmntRequestRefused(
                "invalid_request_error", "the init message must be a JSON text frame"
            )
        init = protocol.parse_init(msg.data)
        if not self._config.accepts_key(init.api_key):
            raise LmntRequestRefused("authentication_error", "invalid or missing X-API-Key")
        if get_voice(init.voice) is None:
            raise LmntRequestRefused("not_found_error", f"voice {init.voice!r} not found")
        self._init = init
        self._log = self._log.bind(voice=init.voice, format=init.format, version=init.lmnt_version)
        await self._send_json(protocol.ready(self.request_id))
        self._log.info("session_ready", sample_rate=init.effective_sample_rate)
        return True

    async def _receive_loop(self) -> None:
        async for msg in self._ws:
            if msg.type == WSMsgType.BINARY:
                raise LmntRequestRefused("invalid_request_error", "binary frames are not accepted")
            if msg.type != WSMsgType.TEXT:
                continue
            message = protocol.parse_client_message(msg.data)
            if self._finished:
                continue  # after finish only the close matters
            if isinstance(message, protocol.TextMessage):
                for segment in self._text.append(message.text):
                    self._enqueue(Segment(segment))
            elif isinstance(message, protocol.FlushMessage):
                self._enqueue_rest()
                self._enqueue(FlushMark(message.nonce))
            elif isinstance(message, protocol.ResetMessage):
                await self._reset(message.nonce)
            else:
                self._finished = True
                self._enqueue_rest()
                self._enqueue(FinishMark())

    def _enqueue_rest(self) -> None:
        rest = self._text.flush()
        if rest:
            self._enqueue(Segment(rest))

    def _enqueue(self, item: Work) -> None:
        if self._work.qsize() >= self._config.max_buffered_segments:
            raise LmntRequestRefused("rate_limit_error", "too much text waiting to be spoken")
        self._work.put_nowait(item)

    async def _reset(self, nonce: int | None) -> None:
        """Drop text, synthesis and queued audio now; ack cut-short flushes, then the reset."""
        started = time.perf_counter()
        self._text.clear()
        async with self._send_lock:
            await self._stop_pipeline()
            pending = [*self._in_hand.values(), *_drain(self._work), *_drain(self._outbox)]
            for item in pending:
                if isinstance(item, FlushMark):
                    await self._send_json(protocol.flush_complete(item.nonce))
            if not self._faults.ignores_reset:
                await self._send_json(protocol.reset_complete(nonce))
            self._new_turn()
        self._start_pipeline()
        self._log.debug("reset_acknowledged", ms=round((time.perf_counter() - started) * 1000, 2))

    # --- pipeline ---

    def _start_pipeline(self) -> None:
        self._in_hand = {"producer": None, "sender": None}
        self._producer = asyncio.create_task(self._produce(), name=f"{self.request_id}-synth")
        self._sender = asyncio.create_task(self._send_audio(), name=f"{self.request_id}-send")
        self._producer.add_done_callback(self._on_task_done)
        self._sender.add_done_callback(self._on_task_done)

    async def _stop_pipeline(self) -> None:
        tasks = [t for t in (self._producer, self._sender) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._producer = self._sender = None

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        """A pipeline task that dies unexpectedly ends the session instead of hanging it."""
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, _SessionEnded):
            self._log.error("pipeline_failed", task=task.get_name(), error=repr(exc))
            if not self._ended.is_set():
                self._crashed = True  # run() sends the error envelope once the pipeline stops
            self._end(WSCloseCode.INTERNAL_ERROR)

    async def _report_crash(self) -> None:
        """Tell the client a 1011 close is a server fault, not the end of its speech."""
        self._crashed = False
        envelope = protocol.session_error(
            "internal_server_error", "speech synthesis failed unexpectedly", self.request_id
        )
        with contextlib.suppress(ConnectionError, RuntimeError):
            async with self._send_lock:
                if not self._ws.closed:
                    await self._ws.send_json(envelope)

    async def _produce(self) -> None:
        """Synthesise queued segments in order; the first audio of each utterance may be delayed."""
        init = self._require_init()
        rate = init.effective_sample_rate
        turn_started = False
        while True:
            item = await self._work.get()
            self._in_hand["producer"] = item
            if isinstance(item, Segment):
                if not turn_started and self._config.first_audio_delay_ms:
                    await asyncio.sleep(self._config.first_audio_delay_ms / 1000)
                turn_started = True
                try:
                    result = await self._synth.synthesize(
                        item.text, init.voice, rate, speed=init.speed, language=init.language
                    )
                except SynthesisError as exc:
                    await self._fail("internal_server_error", f"synthesis failed: {exc}")
                    raise _SessionEnded from exc
                for chunk in chunk_audio(result.pcm16, rate, result.words, self._config.chunk_ms):
                    await self._outbox.put(chunk)
            else:
                if isinstance(item, FlushMark):
                    turn_started = False
                await self._outbox.put(item)
            self._in_hand["producer"] = None
            if isinstance(item, FinishMark):
                return

    async def _send_audio(self) -> None:
        """Emit queued output in order, paced by ``realtime_factor`` against a monotonic clock."""
        next_due = time.monotonic()
        while True:
            item = await self._outbox.get()
            self._in_hand["sender"] = item
            if self._stalled or self._faults.stall_due(self._session_audio_s * 1000):
                await self._stall()
            if isinstance(item, AudioChunk):
                factor = self._config.realtime_factor
                now = time.monotonic()
                next_due = max(next_due, now)
                if factor > 0 and next_due > now:
                    await asyncio.sleep(next_due - now)
                next_due += item.duration_s * factor
                async with self._send_lock:
                    await self._emit_chunk(item)
                await self._maybe_inject_fault()
            elif isinstance(item, FlushMark):
                async with self._send_lock:
                    await self._send_json(protocol.flush_complete(item.nonce))
                    self._new_turn()
            else:
                self._end(WSCloseCode.OK)
                raise _SessionEnded
            self._in_hand["sender"] = None

    async def _emit_chunk(self, chunk: AudioChunk) -> None:
        init = self._require_init()
        if self._ended.is_set() or self._ws.closed:
            raise _SessionEnded
        if init.return_timestamps and chunk.words:
            offset = self._turn_audio_s if init.lmnt_version != "1.1" else 0.0
            words = [(text, start + offset, duration) for text, start, duration in chunk.words]
            await self._send_json(protocol.timestamps(words))
        payload = encode(chunk.pcm16, init.format)
        if init.format == "ulaw" and self._header_due:
            payload = ulaw_wav_header(init.effective_sample_rate) + payload
            self._header_due = False
        await self._ws.send_bytes(payload)
        self._turn_audio_s += chunk.duration_s
        self._session_audio_s += chunk.duration_s

    async def _maybe_inject_fault(self) -> None:
        """Called without ``_send_lock`` held: ``_fail`` takes it."""
        sent_ms = self._session_audio_s * 1000
        config = self._config
        if self._faults.error_due(sent_ms):
            self._log.warning("fault_injected", kind="error", after_ms=round(sent_ms))
            await self._fail(config.fault_error_type, config.fault_error_message)
            raise _SessionEnded
        if self._faults.close_due(sent_ms):
            self._log.warning("fault_injected", kind="close", code=config.fault_close_code)
            self._end(config.fault_close_code)
            raise _SessionEnded

    async def _stall(self) -> None:
        """A hung synthesiser: nothing more is ever sent (a reset restarts this wait)."""
        if not self._stalled:
            self._log.warning("fault_injected", kind="stall")
        self._stalled = True
        await asyncio.Event().wait()

    def _new_turn(self) -> None:
        self._turn_audio_s = 0.0
        if self._config.wav_header == "every_flush":
            self._header_due = True

    # --- output helpers ---

    def _require_init(self) -> InitMessage:
        assert self._init is not None, "pipeline runs only after the handshake"
        return self._init

    async def _send_json(self, message: dict[str, object]) -> None:
        if not self._ws.closed and not self._ended.is_set():
            await self._ws.send_json(message)

    async def _fail(self, error_type: ErrorType, message: str) -> None:
        self._log.info("session_error", error_type=error_type, message=message)
        envelope = protocol.session_error(error_type, message, self.request_id)
        with contextlib.suppress(ConnectionError, RuntimeError):
            async with self._send_lock:  # never between a timestamps frame and its audio
                await self._send_json(envelope)
        code = WSCloseCode.INTERNAL_ERROR if error_type == "internal_server_error" else 1008
        self._end(code)

    def _end(self, code: int) -> None:
        """Ask run() to close with ``code`` (first request wins); nothing more is sent."""
        if not self._ended.is_set():
            self._close_code = code
            self._ended.set()


def _drain(queue: asyncio.Queue) -> list:  # type: ignore[type-arg]
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


async def handle_stream(request: web.Request) -> web.WebSocketResponse:
    """aiohttp handler for ``/v1/ai/speech/stream``."""

    delay_ms = request.app[CONFIG_KEY].accept_delay_ms
    if delay_ms:
        await asyncio.sleep(delay_ms / 1000)
    ws = web.WebSocketResponse(max_msg_size=1 << 20, autoping=True)
    await ws.prepare(request)
    counter = request.app[SESSION_COUNT_KEY]
    counter[0] += 1
    session = StreamSession(ws, request.app[CONFIG_KEY], request.app[SYNTH_KEY], counter[0])
    request.app[SESSIONS_KEY].add(ws)
    try:
        await session.run()
    finally:
        request.app[SESSIONS_KEY].discard(ws)
    return ws
