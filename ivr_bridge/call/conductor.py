"""The call conductor: one per call, the only place that decides who speaks and when it ends.

It owns four tasks — the dialog, the playback release loop, the speech-session pump and the
barge-in controller — and cancels all of them when the call ends, whichever way it ends: the
dialog finishes, the caller hangs up, the speech path fails, or an event from outside the socket
(``on_event``: an operator's "hang up now") ends it. Mechanics live below it: ``Listener`` (VAD,
endpointing), ``TurnWatch`` (listening ahead, turn timing), ``CallerInputs`` (type-ahead, finish
keys), ``BargeInController`` (pause, clear, reset, resume), ``Playback`` (frames, marks, clear),
the speech session (LMNT), and the call's app, which talks to the call only through the
``CallControl`` contract implemented here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog

from ivr_bridge.audio.codec import ulaw_duration_ms
from ivr_bridge.call.app import DEFAULT_FAILURE, FailurePolicy
from ivr_bridge.call.bargein import BargeInController, Prompt
from ivr_bridge.call.call_audio import CallAudio
from ivr_bridge.call.clock import CallClock
from ivr_bridge.call.control import BargeInPolicy, CallControl, CallDetails, SayResult
from ivr_bridge.call.event_log import CallEventLog, EventObserver
from ivr_bridge.call.heard import heard_text, unheard_part
from ivr_bridge.call.input_queue import CallerInputs
from ivr_bridge.call.inputs import (
    AnsweredBy,
    CallerInput,
    DtmfInput,
    SpeechAbandoned,
    SpeechInput,
    SpeechStarted,
)
from ivr_bridge.call.listener import Listener, ListenerSettings
from ivr_bridge.call.lookahead import Ahead, AheadHandle, T
from ivr_bridge.call.outcomes import HANGUP, CallOutcome, OutcomeStore
from ivr_bridge.call.playback import Playback, PlaybackSettings, SendText
from ivr_bridge.call.registry import CallEvent, HangUpNow, MachineDetected, TransferNow
from ivr_bridge.call.speech_feed import SpeechFeed
from ivr_bridge.call.text_stream import TextFeed, first_piece, single
from ivr_bridge.call.turn_watch import TurnWatch
from ivr_bridge.call.utterance import Utterance
from ivr_bridge.errors import CallEnding
from ivr_bridge.metrics import BridgeMetrics, speech_error_label
from ivr_bridge.speech.session import (
    SpeechSession,
    SpeechSessionClosed,
    SpeechSessionError,
)

log = structlog.get_logger(__name__)

TEARDOWN_S = 5.0
FINAL_WORDS_S = 10.0
"""Longest the final words of a call ended from outside may take (a deploy waits for them)."""
PLAY_PIECE_BYTES = 8000
"""Recorded audio is queued a second at a time so an interruption stops the rest at once."""

Dialog = Callable[[CallControl], Awaitable[None]]
"""Runs the conversation (a call app's ``run``); returns, or calls ``hangup``/``transfer``,
when it is over."""


class CallConductor:
    def __init__(
        self,
        *,
        details: CallDetails,
        dialog: Dialog,
        speech: SpeechSession,
        send: SendText,
        close_stream: Callable[[], Awaitable[Any]],
        outcomes: OutcomeStore,
        metrics: BridgeMetrics,
        playback: PlaybackSettings,
        started_at: float,
        default_barge_in: BargeInPolicy | None = None,
        listening: ListenerSettings | None = None,
        failure: FailurePolicy = DEFAULT_FAILURE,
        on_first_media: Callable[[float], None] | None = None,
        on_said: Callable[[SayResult], None] | None = None,
        on_event: EventObserver | None = None,
        record_audio: bool = False,
    ) -> None:
        """``on_first_media``: told the wall-clock time (epoch s) the caller's first audio
        went out; ``on_said``: told each utterance once it is over, with what was heard;
        ``on_event``: told every event of the call's timeline as it is recorded;
        ``record_audio``: keep both channels (``self.audio``) for the call's recording."""
        self.details = details
        self._on_first_media = on_first_media
        self._on_said = on_said
        self.clock = CallClock()
        self.event_log = CallEventLog(self.clock, observer=on_event)
        self._dialog = dialog
        self._speech = speech
        self._close_stream = close_stream
        self._outcomes = outcomes
        self._metrics = metrics
        self._started_at = started_at
        self._failure = failure
        self.default_barge_in = default_barge_in or BargeInPolicy()
        self.audio = CallAudio(keep_audio=record_audio)
        """What the caller sent and what they heard of the bot, on the call clock."""
        self.playback = Playback(
            send,
            details.stream_sid,
            chunk_ms=playback.chunk_ms,
            lead_ms=playback.lead_ms,
            grace_ms=playback.grace_ms,
            start_ms=playback.start_ms,
            on_first_media=self._first_media_sent,
            on_underrun=metrics.observe_underrun,
            on_stale_frame=metrics.playback_stale_frames.inc,
            on_sent=self._bot_sent,
            on_clear=lambda: self.audio.on_clear(self.clock.now_ms()),
        )
        self.speech_feed = SpeechFeed(
            speech,
            self.playback,
            self.record_event,
            on_first_audio=lambda: self.turns.timing.first_audio(self.clock.now_ms()),
        )
        self._utterance_ids = 0
        self.inputs = CallerInputs(self.clock)
        self._outcome: CallOutcome | None = None
        self._ended_from_outside: asyncio.Future[tuple[CallOutcome, str | None]] = (
            asyncio.get_running_loop().create_future()
        )
        """Set by ``on_event``: the outcome, and final words to say before it (or None)."""
        self.start_to_first_media_s: float | None = None
        self._caller_talking_since: float | None = None
        """Onset (call ms) of confirmed caller speech not yet delivered as an utterance."""
        self.barge_in = BargeInController(
            playback=self.playback,
            clock=self.clock,
            metrics=metrics,
            cancel_synthesis=self.speech_feed.cancel,
            record_event=self.record_event,
        )
        self.listener = Listener(
            self,
            listening,
            bot_audible=lambda: self.barge_in.bot_audible,
            on_rejected=self._speech_rejected,
        )
        self.turns = TurnWatch(self.listener, self.clock, metrics, self.record_event)
        """Listening ahead and each turn's timing (``call.turn_watch``)."""

    # --- Inbound events (called by the media-stream handler; must stay cheap) -----------------

    def on_media(self, timestamp_ms: int, audio: bytes) -> None:
        at = self.clock.on_media(timestamp_ms, len(audio) // 8 or 20)
        self.audio.on_caller(min(timestamp_ms, at), audio)
        self.turns.hear(at, audio)
        self.listener.feed(at, audio)

    def on_dtmf(self, digit: str) -> None:
        at = self.clock.now_ms()
        if self.inputs.swallows(digit, at):  # the finish key after a full-length entry
            self.record_event("dtmf_swallowed", digit=digit, at_ms=at)
            return
        self.record_event("dtmf", digit=digit, at_ms=at)
        self.turns.timing.caller_turn(at, at, keys=True)
        self.inputs.push(DtmfInput(digit, at))
        # A key ends the caller's turn and is its answer: words still inside their end-of-speech
        # wait are delivered now, after the key, so they cannot linger as "the caller is
        # talking" and cut the prompt the key starts (dead air until the gather timed out).
        self.listener.end_turn(at)
        self.barge_in.on_dtmf(at)

    def on_event(self, event: CallEvent) -> None:
        """An event from outside the socket (``ivr_bridge.call.registry``)."""
        if isinstance(event, MachineDetected):
            self.record_event("answered_by", answered_by=event.answered_by)
            self.inputs.push(AnsweredBy(event.answered_by, self.clock.now_ms()))
            return
        if self._ended_from_outside.done():
            return
        if isinstance(event, TransferNow):
            self.record_event("ended_from_outside", action="dial", reason=event.reason)
            self._ended_from_outside.set_result((CallOutcome("dial", number=event.number), None))
        elif isinstance(event, HangUpNow):
            self.record_event("ended_from_outside", action="hangup", reason=event.reason)
            self._ended_from_outside.set_result((HANGUP, event.say))

    # Listener events (ListenerSink): the caller's speech, on the call clock.

    def on_speech_onset(self, at_ms: float) -> None:
        self.barge_in.on_onset(at_ms)
        self.inputs.push(SpeechStarted(at_ms))

    def on_speech_confirmed(self, onset_ms: float, at_ms: float) -> None:
        self._caller_talking_since = onset_ms
        self.barge_in.on_confirmed(onset_ms)

    def on_speech_abandoned(self, onset_ms: float, at_ms: float) -> None:
        self.barge_in.on_abandoned(onset_ms, at_ms)
        self.inputs.push(SpeechAbandoned(at_ms))

    def _speech_rejected(self, onset_ms: float, at_ms: float) -> None:
        """webrtcvad heard speech over the bot, silero did not (a cough, a breath)."""
        self._metrics.vad_confirmer_rejections.inc()
        self.record_event("speech_rejected", onset_ms=onset_ms, at_ms=at_ms)

    def on_speech_input(self, speech: SpeechInput) -> None:
        self._caller_talking_since = None
        now = self.clock.now_ms()
        self.record_event(
            "caller_speech",
            start_ms=speech.start_ms,
            end_ms=speech.end_ms,
            endpointing_ms=round(now - speech.voice_end_ms),
        )
        self.turns.timing.caller_turn(speech.voice_end_ms, now)
        self.inputs.push(speech)

    def on_mark(self, name: str) -> None:
        self.playback.on_mark(name)

    # --- The call's life ----------------------------------------------------------------------

    async def run(self) -> None:
        """Run the dialog to its end. Cancelled from outside when the caller hangs up."""
        tasks = [
            asyncio.create_task(self._run_dialog(), name="dialog"),
            asyncio.create_task(self.playback.run(), name="playback"),
            asyncio.create_task(self.speech_feed.run(), name="speech-pump"),
            asyncio.create_task(self.barge_in.run(), name="barge-in"),
        ]
        dialog = tasks[0]
        outcome: CallOutcome | None = None
        try:
            waiters: list[asyncio.Future[Any]] = [*tasks, self._ended_from_outside]
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if self._ended_from_outside in done:  # an operator, a campaign or a deploy
                outcome, words = self._ended_from_outside.result()
                if words:
                    await self._final_words(dialog, words)
            elif dialog in done:
                outcome = dialog.result()
            else:  # playback or the speech pump stopped mid-call: never leave dead air
                failed = done.pop()
                raise failed.exception() or SpeechSessionClosed(None, "speech pump stopped")
        except SpeechSessionError as exc:
            self._metrics.speech_errors.labels(type=speech_error_label(exc.error_type)).inc()
            log.error("speech session failed; apologising and ending the call", error=str(exc))
            outcome = self._failure.outcome()
        except Exception:
            log.exception("call failed; apologising and ending the call")
            outcome = self._failure.outcome()
        finally:
            self.listener.close()
            self.turns.close()
            try:
                await self._stop_tasks(tasks)
            finally:
                # Whatever happened above (a caller hang-up cancels this task mid-teardown),
                # the speech session is closed: a session left open lives on forever.
                with contextlib.suppress(Exception):
                    await self._speech.close()
            if outcome is not None:
                await self._outcomes.record(self.details.call_sid, outcome)
                self.record_event("end", action=outcome.action, number=outcome.number)
                await self._close_stream()

    async def _final_words(self, dialog: asyncio.Task[Any], words: str) -> None:
        """Stop the dialog and what it is saying; say ``words`` in full (bounded)."""
        dialog.cancel()
        await asyncio.wait({dialog}, timeout=TEARDOWN_S)
        with contextlib.suppress(TimeoutError):  # a deploy cannot wait for ever: end anyway
            async with asyncio.timeout(FINAL_WORDS_S):
                await self._say_final(words)

    async def _say_final(self, words: str) -> None:
        await self.barge_in.stop_prompt()
        await self.say(words, barge_in=BargeInPolicy("none"))
        await self._drain_playback()

    @staticmethod
    async def _stop_tasks(tasks: list[asyncio.Task[Any]]) -> None:
        for task in tasks:
            task.cancel()
        # Bounded: a task that ignores its cancellation must not keep the call open.
        _, stuck = await asyncio.wait(tasks, timeout=TEARDOWN_S)
        if stuck:
            log.error("call tasks did not stop", tasks=[t.get_name() for t in stuck])
        for task in tasks:  # mark late failures as seen; the call's outcome is decided
            if task.done() and not task.cancelled():
                task.exception()

    async def _run_dialog(self) -> CallOutcome:
        with contextlib.suppress(CallEnding):
            await self._dialog(self)
            await self._drain_playback()
        return self._outcome or HANGUP

    # --- CallControl: what dialogs call -------------------------------------------------------

    async def say(self, text: str, *, barge_in: BargeInPolicy | None = None) -> SayResult:
        """Speak ``text``; returns once it has played in full (final mark echoed) or was cut."""
        return await self.say_stream(single(text), barge_in=barge_in)

    async def say_stream(
        self, chunks: AsyncIterator[str], *, barge_in: BargeInPolicy | None = None
    ) -> SayResult:
        """Speak text as it arrives, as one utterance (``CallControl.say_stream``).

        Each piece goes to the speech session at once; one flush when ``chunks`` ends; returns
        after the final mark echoed, or on barge-in (interruptible from the first piece sent),
        when the reader of ``chunks`` is cancelled so its producer (the model) can stop.

        The caller talking before the first piece (the model still thinking) interrupts
        nothing, since nothing is audible; their utterance is queued as input as usual. If they
        are still talking when the first piece arrives, the utterance is cut at once under the
        policy (nothing, or a few ms, plays; ``heard_text`` is empty) rather than talking over
        them.
        """
        policy = barge_in or self.default_barge_in
        if self.inputs.keys_would_cut(policy):
            return await self._skipped(chunks)
        pieces = aiter(chunks)
        first = await first_piece(pieces)
        if first is None:
            return SayResult(text="", heard_text="", played_ms=0.0)
        utterance = self._new_utterance(first)
        self.turns.timing.text_sent(self.clock.now_ms())
        self.speech_feed.start(utterance)
        await self._speech.send_text(first)
        # Interruptible only now: a speech ``reset`` must follow this text on the wire.
        prompt = self.barge_in.begin(utterance, policy)
        self._interrupt_if_caller_talking()
        feed = TextFeed(
            utterance, self._speech, lambda: _cut(prompt), self.speech_feed.register_flush
        )
        feeder = asyncio.create_task(feed.run(pieces), name="say-stream")
        try:
            waiters: list[asyncio.Future[Any]] = [feeder, utterance.done]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if feeder.done():
                feeder.result()  # a speech session that died mid-send surfaces here
        finally:
            if not feeder.done():  # barge-in (or the call ended): stop reading the text
                feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
        try:
            await utterance.done
        except asyncio.CancelledError:  # the call ended mid-utterance: log what was heard
            self._record_said(prompt, feed.pieces_sent, cut_by="hangup")
            raise
        return await self._said(prompt, pieces=feed.pieces_sent)

    def _interrupt_if_caller_talking(self) -> None:
        if self._caller_talking_since is not None:
            now = self.clock.now_ms()
            self.record_event("caller_talking_at_prompt", onset_ms=self._caller_talking_since)
            self.barge_in.on_onset(now)
            self.barge_in.on_confirmed(now)

    async def _skipped(self, chunks: AsyncIterator[str]) -> SayResult:
        text = "".join([piece async for piece in chunks])
        self.record_event("prompt_skipped", reason="keys typed ahead", text=text)
        return SayResult(text, "", 0.0, interrupted=True, interrupted_by="dtmf")

    async def play(
        self, ulaw: bytes, *, label: str, barge_in: BargeInPolicy | None = None
    ) -> SayResult:
        policy = barge_in or self.default_barge_in
        if self.inputs.keys_would_cut(policy):
            return await self._skipped(single(label))
        utterance = self._new_utterance(label)
        self.record_event("bot_plays", utterance=utterance.id, label=label, ms=len(ulaw) // 8)
        self.turns.timing.text_sent(self.clock.now_ms())
        self.turns.timing.first_audio(self.clock.now_ms())  # recorded audio: nothing to render
        prompt = self.barge_in.begin(utterance, policy)
        for offset in range(0, len(ulaw), PLAY_PIECE_BYTES):
            if utterance.interrupted:
                break
            await self.playback.enqueue(utterance, ulaw[offset : offset + PLAY_PIECE_BYTES])
        self.playback.synthesis_complete(utterance)
        await utterance.done
        return await self._said(prompt)

    def _new_utterance(self, text: str) -> Utterance:
        self._utterance_ids += 1
        return Utterance(self._utterance_ids, text)

    async def _said(self, prompt: Prompt, *, pieces: int | None = None) -> SayResult:
        """What the caller heard of the prompt; a spoken one (``pieces`` of text) is logged as
        ``bot says`` with the words heard (the record keeps the rest apart)."""
        await self.barge_in.finish(prompt)
        u = prompt.utterance
        heard = self._heard(prompt, interrupted=u.interrupted)
        result = SayResult(
            text=u.text,
            heard_text=heard,
            played_ms=u.played_ms,
            interrupted=u.interrupted,
            interrupted_by=prompt.interrupted_by,
        )
        if pieces is not None:
            self._record_said(prompt, pieces)
        if self._on_said is not None:
            self._on_said(result)
        return result

    @staticmethod
    def _heard(prompt: Prompt, *, interrupted: bool) -> str:
        u = prompt.utterance
        total_ms = ulaw_duration_ms(u.bytes_received) if u.synthesis_complete else None
        return heard_text(u.text, u.words, u.played_ms, total_ms, interrupted=interrupted)

    def _record_said(self, prompt: Prompt, pieces: int, cut_by: str | None = None) -> None:
        """The ``bot says`` event: the words heard (a hang-up mid-utterance cuts them too)."""
        u = prompt.utterance
        interrupted = u.interrupted or cut_by is not None
        heard = self._heard(prompt, interrupted=interrupted)
        self.record_event(
            "bot_says",
            utterance=u.id,
            text=heard,
            pieces=pieces,
            interrupted=interrupted,
            by=prompt.interrupted_by or cut_by,
            played_ms=round(u.played_ms),
            full_text=u.text,
            unheard=unheard_part(u.text, heard),
        )

    async def next_input(self, timeout_ms: float | None) -> CallerInput | None:
        return await self.inputs.next(timeout_ms)

    def recognize_ahead(self, ahead: Ahead[T]) -> AheadHandle[T]:
        """Recognise the caller at each pause from now on (``call.lookahead``)."""
        return self.turns.recognize_ahead(ahead)

    def _bot_sent(self, utterance: Utterance, audio: bytes) -> None:
        now = self.clock.now_ms()
        self.audio.on_bot_sent(now, utterance.id, audio)
        self.turns.timing.released(now)

    def discard_inputs(self, *, keys: bool = True) -> None:
        self.inputs.discard(keys=keys)

    def swallow_key(self, digit: str, within_ms: float) -> None:
        self.inputs.swallow_key(digit, within_ms)

    def record_event(self, kind: str, **fields: Any) -> None:
        self.event_log.record(kind, **fields)

    def mark_sensitive(self, value: str) -> None:
        self.event_log.mark_sensitive(value)

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.event_log.events

    async def transfer(self, number: str) -> None:
        self._outcome = CallOutcome("dial", number=number)
        await self._drain_playback()
        raise CallEnding

    async def hangup(self) -> None:
        self._outcome = HANGUP
        await self._drain_playback()
        raise CallEnding

    async def _drain_playback(self) -> None:
        """Everything said so far must be heard before the stream closes."""
        pending = self.speech_feed.in_flight()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        await self.playback.wait_idle()

    def _first_media_sent(self) -> None:
        if self._on_first_media is not None:
            self._on_first_media(time.time())
        self.start_to_first_media_s = time.monotonic() - self._started_at
        self._metrics.start_to_first_media.observe(self.start_to_first_media_s)
        log.info(
            "first media sent", start_to_first_media_ms=round(self.start_to_first_media_s * 1000)
        )


def _cut(prompt: Prompt) -> bool:
    """The prompt's interruption was decided (the utterance may not be marked yet)."""
    return prompt.interrupted_by is not None or prompt.utterance.interrupted
