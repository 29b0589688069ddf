"""The media-stream WebSocket: Twilio frames in, a conductor per call, JSON frames out.

The receive loop never waits on anything slow (Twilio discards audio from a slow consumer):
choosing the call's app, opening its speech session and running it happen in the call's own
task. Nothing the caller does is lost meanwhile: media, keys and out-of-band events that arrive
between ``start`` and the conductor are kept (bounded) and handed to it in order, so on an
outbound call the callee's first "Hello?" is what the app hears first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from ivr_bridge.call.app import DEFAULT_FAILURE, AppUnavailable, CallApp, FailurePolicy
from ivr_bridge.call.conductor import CallConductor
from ivr_bridge.call.control import CallDetails
from ivr_bridge.call.event_log import mask_phone_numbers
from ivr_bridge.call.registry import CallEvent, HangUpNow
from ivr_bridge.call.transcripts import BotLine
from ivr_bridge.dialog.reminder import ATTEMPT_PARAMETER
from ivr_bridge.metrics import speech_error_label
from ivr_bridge.server.call_records import call_record
from ivr_bridge.server.state import STATE, BridgeState
from ivr_bridge.server.stream_tokens import TOKEN_PARAMETER, TOKEN_TTL_S
from ivr_bridge.server.twilio_webhooks import SIGNATURE_HEADER
from ivr_bridge.speech.recovering import RecoveringSpeech
from ivr_bridge.speech.session import SpeechSession, SpeechSessionError
from ivr_bridge.telephony.twilio.models import (
    ConnectedEvent,
    DtmfEvent,
    MalformedFrame,
    MarkEvent,
    MediaEvent,
    StartEvent,
    StopEvent,
    parse_inbound,
)

log = structlog.get_logger(__name__)

MAX_FRAME_BYTES = 1 << 20
RECEIVE_TIMEOUT_S = 10.0
START_TIMEOUT_S = 5.0
"""A stream whose usable ``start`` has not come by then is closed (1008) and counted."""
CLOSE_WAIT_S = 5.0
"""How long a stream the bridge is closing may take to finish its close handshake."""
EARLY_INPUT_MAX = 600
"""Frames, keys and events kept between ``start`` and the conductor: 12 s of caller audio,
more than the speech session's open timeout, so nothing is dropped before the app runs."""

_Early = tuple[int, bytes] | str | CallEvent
"""Waiting for the conductor: a media frame (timestamp, µ-law), a key, an out-of-band event."""

FIRST_AUDIO_NOTE_S = 5.0
"""How long a campaign call's dial → first audio write may take (the database may be busy)."""


async def _bounded(work: Awaitable[None], timeout_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await work


async def media_stream(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if not state.signatures.valid_websocket(request.path, request.headers.get(SIGNATURE_HEADER)):
        state.metrics.signature_rejections.labels(route="media").inc()
        log.warning("rejected media stream upgrade: bad or missing X-Twilio-Signature")
        raise web.HTTPForbidden(text="invalid X-Twilio-Signature\n")
    # Draining or not, a signed stream is accepted: the voice webhook answers no new calls while
    # draining, so a stream arriving now belongs to a call already answered (refusing it would
    # drop a call the caller hears ringing through). It gets the drain's final words if due.
    # No permessage-deflate: base64 audio barely compresses, and zlib on every 20 ms frame was
    # the largest single cost per call under load (both directions, both ends).
    # Twilio sends a media frame every 20 ms: ten silent seconds means the peer is gone (a
    # half-open TCP connection would otherwise hold the call open forever).
    ws = web.WebSocketResponse(
        max_msg_size=MAX_FRAME_BYTES, compress=False, receive_timeout=RECEIVE_TIMEOUT_S
    )
    await ws.prepare(request)
    stream = MediaStream(state, ws)
    state.streams.add(stream)
    try:
        with structlog.contextvars.bound_contextvars(call_sid=None, stream_sid=None):
            await stream.serve()
    finally:
        state.streams.discard(stream)
    return ws


class MediaStream:
    def __init__(self, state: BridgeState, ws: web.WebSocketResponse) -> None:
        self._state = state
        self._ws = ws
        self._metrics = state.metrics
        self.conductor: CallConductor | None = None
        self._first_audio_note: asyncio.Task[None] | None = None
        """A campaign call's dial → first audio, being written to the campaign store."""
        self._call_task: asyncio.Task[None] | None = None
        self._stopped = False
        self._closed_by_bridge = False
        self._early: deque[_Early] = deque(maxlen=EARLY_INPUT_MAX)
        self._refusal: asyncio.Task[None] | None = None
        self._start_timer = asyncio.get_running_loop().call_later(START_TIMEOUT_S, self._no_start)
        self._call: CallDetails | None = None
        self._app_name = ""
        self._started_at = datetime.now(UTC)
        self._start_error: str | None = None
        """Why the call's app could not start (its record says so)."""
        self._counted: dict[tuple[bool, str], Any] = {}
        """Labelled frame counters, looked up once per event name (``labels()`` per frame was
        a measurable share of the per-frame cost under load)."""

    async def serve(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        self._on_text(msg.data)
                    except Exception:  # a bug: it must cost this frame, never the call
                        self._metrics.malformed_frames.labels(kind="internal").inc()
                        log.exception("handling a Twilio frame failed; frame skipped")
                elif msg.type == WSMsgType.BINARY:
                    self._metrics.malformed_frames.labels(kind="binary").inc()
                    log.warning("ignored a binary frame (Twilio sends JSON text only)")
                elif msg.type == WSMsgType.ERROR:
                    log.warning("media stream socket error", error=str(self._ws.exception()))
                if self._stopped:
                    break
        finally:
            self._start_timer.cancel()
            if self._refusal is not None:
                await self._refusal
            await self._end_call()

    def _no_start(self) -> None:
        """No usable ``start`` in time: this is not a call, and must not hold a socket open."""
        if self._call_task is None and self._refusal is None:
            self._refusal = asyncio.create_task(self._refuse("no usable start"), name="refuse")

    async def _refuse(self, reason: str) -> None:
        self._metrics.streams_refused.labels(reason=reason.replace(" ", "_")).inc()
        log.warning("media stream closed: not a call", reason=reason)
        with contextlib.suppress(Exception):
            await self._ws.close(code=WSCloseCode.POLICY_VIOLATION, message=reason.encode())

    async def close_going_away(self) -> None:
        """End of a drain: close this socket (a call here is already over or cut)."""
        if not self._ws.closed:
            with contextlib.suppress(Exception):
                await self._ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    def _on_text(self, raw: str) -> None:
        try:
            event = parse_inbound(raw)
        except MalformedFrame as exc:
            self._metrics.malformed_frames.labels(kind=exc.kind).inc()
            log.warning("malformed Twilio frame skipped", reason=exc.reason, frame=raw[:200])
            return
        self._count(inbound=True, event=event.event)
        conductor = self.conductor
        if isinstance(event, MediaEvent):
            if self._call_task is None:
                return  # no call yet (media before start): nothing to hand it to
            try:
                audio = event.media.audio()
            except MalformedFrame as exc:  # bad base64: lose one frame, not the call
                self._metrics.malformed_frames.labels(kind=exc.kind).inc()
                log.warning("malformed Twilio frame skipped", reason=exc.reason)
                return
            if conductor is not None:
                conductor.on_media(event.media.timestamp_ms, audio)
            else:
                self._early.append((event.media.timestamp_ms, audio))
        elif isinstance(event, MarkEvent):
            if conductor is not None:
                conductor.on_mark(event.mark.name)
        elif isinstance(event, DtmfEvent):
            if conductor is not None:
                conductor.on_dtmf(event.dtmf.digit)
            elif self._call_task is not None:
                self._early.append(event.dtmf.digit)
        elif isinstance(event, StartEvent):
            self._on_start(event)
        elif isinstance(event, StopEvent):
            log.info("caller hung up (stop)")
            self._stopped = True
        elif isinstance(event, ConnectedEvent):
            log.debug("stream connected", protocol=event.protocol, version=event.version)

    def _on_start(self, event: StartEvent) -> None:
        if self._call_task is not None:
            log.warning("second 'start' on one stream ignored")
            return
        if self._refusal is not None:
            return  # too late: the stream is being closed
        started_at = time.monotonic()
        start = event.start
        structlog.contextvars.bind_contextvars(call_sid=start.call_sid, stream_sid=start.stream_sid)
        parameters = dict(start.custom_parameters)
        problem = self._state.stream_tokens.check(start.call_sid, parameters)
        if problem is not None:  # not a call this bridge answered (or a replay of one)
            self._start_timer.cancel()
            self._refusal = asyncio.create_task(self._refuse(problem), name="refuse")
            return
        self._start_timer.cancel()
        parameters.pop(TOKEN_PARAMETER, None)
        call = CallDetails(start.call_sid, start.stream_sid, parameters)
        self._call, self._started_at = call, datetime.now(UTC)
        log.info("stream started", parameters=mask_phone_numbers(call.parameters))
        self._metrics.active_calls.inc()
        self._call_task = asyncio.create_task(self._run_call(call, started_at), name="call")
        self._state.active_calls.add(self._call_task)

    def on_event(self, event: CallEvent) -> None:
        """An event for this call from outside its socket (via the live-call registry)."""
        if self.conductor is not None:
            self.conductor.on_event(event)
        else:
            self._early.append(event)

    async def _run_call(self, call: CallDetails, started_at: float) -> None:
        state = self._state
        if (
            state.stream_tokens.enforced
            and state.shared is not None
            and not await state.shared.first_start(call.call_sid, TOKEN_TTL_S)
        ):  # this replica had not seen the start, another one had
            await self._refuse("replayed_start")
            return
        calls = state.calls
        try:  # registering may wait on Redis: a hang-up meanwhile must still unregister
            await calls.register(call.call_sid, self)
            if self._state.final_words is not None:  # a drain is ending: this call ends now
                self.on_event(HangUpNow("shutdown", self._state.final_words))
            await self._run_app(call, started_at)
        finally:
            await calls.unregister(call.call_sid, self)

    async def _run_app(self, call: CallDetails, started_at: float) -> None:
        state = self._state
        app: CallApp | None = None
        try:
            app = state.apps.resolve(call.parameters)
            speech = await state.open_speech(app.voice or state.settings.voice, app.language)
        except Exception as exc:  # whatever it is, the caller must not sit on a silent line
            self._app_name = app.name if app is not None else ""
            self._start_error = str(exc) or type(exc).__name__
            error_type = exc.error_type if isinstance(exc, SpeechSessionError) else "startup"
            state.metrics.speech_errors.labels(type=speech_error_label(error_type)).inc()
            expected = isinstance(exc, AppUnavailable | SpeechSessionError | OSError)
            log.error(
                "cannot start the call's app; apologising", error=str(exc), exc_info=not expected
            )
            await self._apologise(call, app.failure if app is not None else DEFAULT_FAILURE)
            return
        log.info("call app", app=app.name)
        self._app_name = app.name
        voice = app.voice or state.settings.voice
        self.conductor = CallConductor(
            details=call,
            dialog=app.run,
            failure=app.failure,
            speech=self._recovering(speech, voice, app.language),
            send=self._send,
            close_stream=self._close_by_bridge,
            outcomes=state.outcomes,
            metrics=state.metrics,
            playback=state.playback,
            started_at=started_at,
            default_barge_in=state.barge_in,
            listening=state.listening,
            on_first_media=(
                (lambda at: self._first_audio_sent(call, at))
                if state.campaigns is not None and ATTEMPT_PARAMETER in call.parameters
                else None
            ),
            on_said=lambda said: state.transcripts.add(
                call.call_sid, BotLine(said.text, said.heard_text, said.interrupted)
            ),
            on_event=state.call_metrics.observe_event if state.call_metrics else None,
            record_audio=state.settings.records == "audio",
        )
        self._hand_over_early_input(self.conductor)
        try:
            await self.conductor.run()
            if self._first_audio_note is not None:  # a database write: moments, at most 2 s
                await asyncio.wait({self._first_audio_note}, timeout=2.0)
        except asyncio.CancelledError:
            # Shutdown grace ran out (or the caller left): release the socket so the server can
            # stop; Twilio then moves on to <Connect action>.
            if not self._ws.closed:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._ws.close(code=WSCloseCode.GOING_AWAY))
            raise
        finally:
            self._let_first_audio_note_finish()

    def _let_first_audio_note_finish(self) -> None:
        """A caller who hangs up a moment after the first audio (the handler is cancelled)
        must not take the figure with them: under load the write had not finished yet and the
        call went missing from the histogram. The note is bounded (``FIRST_AUDIO_NOTE_S``) and
        owned by the bridge, which cancels what is left at shutdown."""
        note = self._first_audio_note
        if note is None or note.done():
            return
        lingering = self._state.after_call
        lingering.add(note)
        note.add_done_callback(lingering.discard)

    def _first_audio_sent(self, call: CallDetails, at: float) -> None:
        self._first_audio_note = asyncio.create_task(
            _bounded(self._note_first_audio(call, at), FIRST_AUDIO_NOTE_S)
        )

    async def _note_first_audio(self, call: CallDetails, at: float) -> None:
        """A campaign call: dial → first bot audio, on the attempt and as a histogram."""
        store = self._state.campaigns
        raw = call.parameters.get(ATTEMPT_PARAMETER, "")
        if store is None:
            return
        try:
            delay_s = await store.record_first_audio(
                call.call_sid, at=at, attempt_id=int(raw) if raw.isdigit() else None
            )
        except Exception as exc:  # a figure, not the call: the database may be away
            log.warning("could not record the campaign call's first audio", error=repr(exc))
            return
        if delay_s is not None:
            self._state.metrics.campaign_first_audio.observe(delay_s)

    def _recovering(
        self, speech: SpeechSession, voice: str, language: str | None
    ) -> RecoveringSpeech:
        """The call's speech path, mended mid-call when a session stalls or drops."""
        state = self._state
        s = state.settings
        return RecoveringSpeech(
            speech,
            lambda: state.open_speech(voice, language),
            stall_s=s.tts_stall_ms / 1000,
            silence_s=s.tts_silence_ms / 1000,
            reconnect_s=s.tts_reconnect_s,
            record_event=lambda kind, **fields: self._record(kind, **fields),
            on_recovery=lambda result: state.metrics.speech_recoveries.labels(result=result).inc(),
        )

    def _record(self, kind: str, **fields: Any) -> None:
        if self.conductor is not None:
            self.conductor.record_event(kind, **fields)

    def _hand_over_early_input(self, conductor: CallConductor) -> None:
        """What arrived while the call was starting, in arrival order (no await in between,
        so nothing new can slip ahead of it)."""
        while self._early:
            item = self._early.popleft()
            if isinstance(item, tuple):
                conductor.on_media(*item)
            elif isinstance(item, str):
                conductor.on_dtmf(item)
            else:
                conductor.on_event(item)

    async def _apologise(self, call: CallDetails, failure: FailurePolicy) -> None:
        await self._state.outcomes.record(call.call_sid, failure.outcome())
        await self._close_by_bridge()

    async def _send(self, event: str, text: str) -> None:
        await self._ws.send_str(text)
        self._count(inbound=False, event=event)

    def _count(self, *, inbound: bool, event: str) -> None:
        counter = self._counted.get((inbound, event))
        if counter is None:
            family = self._metrics.frames_in if inbound else self._metrics.frames_out
            counter = self._counted[(inbound, event)] = family.labels(event=event)
        counter.inc()

    async def _close_by_bridge(self) -> None:
        """The call decided to end: close the socket (Twilio then requests the action URL)."""
        self._closed_by_bridge = True
        await self._ws.close()

    async def _end_call(self) -> None:
        task = self._call_task
        if task is None:
            return
        ending = "bridge" if self._closed_by_bridge or task.done() else "caller"
        if ending == "bridge" and not task.done():
            # Our own close ended the receive loop: let the call task finish its teardown.
            await asyncio.wait({task}, timeout=CLOSE_WAIT_S)
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await task
            except Exception:
                ending = "error"
                log.exception("call task failed")
        self._state.active_calls.discard(task)
        self._metrics.active_calls.dec()
        self._metrics.calls_total.labels(ending=ending).inc()
        log.info("stream ended", ending=ending)
        self._keep_record(ending)

    def _keep_record(self, ending: str) -> None:
        """The call's record to the keeper: one summary line, metrics, webhook, store."""
        keeper = self._state.record_keeper
        if keeper is None or self._call is None:
            return
        try:
            record, audio = call_record(
                self._call,
                self.conductor,
                app=self._app_name,
                started_at=self._started_at,
                ending=ending,
                keep_audio=self._state.settings.records == "audio",
                start_error=self._start_error,
            )
        except Exception:  # a bug in the record must not cost the bridge the next call
            log.exception("could not build the call's record")
            return
        keeper.call_ended(record, audio)
