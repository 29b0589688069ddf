"""The call conductor: one per call, the only place that decides who speaks and when it ends.

It owns three tasks — the playback release loop, the speech-session pump and the dialog — and
cancels all of them when the call ends, whichever way it ends. Mechanics live below it:
``Playback`` (frames, marks, clear), the speech session (LMNT), the dialog (flow steps).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from ivr_bridge.call.outcomes import HANGUP, CallOutcome, OutcomeStore
from ivr_bridge.call.playback import Playback, SendText
from ivr_bridge.call.utterance import PlaybackResult, Utterance
from ivr_bridge.dialog.flow import Flow, HangupStep, SayStep
from ivr_bridge.metrics import BridgeMetrics
from ivr_bridge.speech.session import (
    FlushComplete,
    SpeechAudio,
    SpeechSession,
    SpeechSessionClosed,
    SpeechSessionError,
    SpeechTimestamps,
)

log = structlog.get_logger(__name__)

APOLOGY = "We're sorry, we are having technical difficulties. Please call again later. Goodbye."


@dataclass(frozen=True, slots=True)
class CallInfo:
    call_sid: str
    stream_sid: str
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PlaybackSettings:
    chunk_ms: int = 100
    lead_ms: int = 300
    grace_ms: int = 1000


class CallConductor:
    def __init__(
        self,
        *,
        call: CallInfo,
        flow: Flow,
        speech: SpeechSession,
        send: SendText,
        close_stream: Callable[[], Awaitable[None]],
        outcomes: OutcomeStore,
        metrics: BridgeMetrics,
        playback: PlaybackSettings,
        started_at: float,
    ) -> None:
        self.call = call
        self._flow = flow
        self._speech = speech
        self._close_stream = close_stream
        self._outcomes = outcomes
        self._metrics = metrics
        self._started_at = started_at
        self.playback = Playback(
            send,
            call.stream_sid,
            chunk_ms=playback.chunk_ms,
            lead_ms=playback.lead_ms,
            grace_ms=playback.grace_ms,
            on_first_media=self._first_media_sent,
        )
        self._synthesizing: deque[Utterance] = deque()
        self._utterance_ids = 0
        self.call_clock_ms = 0
        """Position of the latest inbound media frame (Twilio's ``media.timestamp``)."""
        self.start_to_first_media_s: float | None = None

    # --- Inbound events (called by the media-stream handler) ----------------------------------

    def on_media(self, timestamp_ms: int, audio: bytes) -> None:
        self.call_clock_ms = timestamp_ms

    def on_dtmf(self, digit: str) -> None:
        log.info("dtmf", digit=digit, call_ms=self.call_clock_ms)

    def on_mark(self, name: str) -> None:
        self.playback.on_mark(name)

    # --- The call's life ----------------------------------------------------------------------

    async def run(self) -> None:
        """Run the dialog to its end. Cancelled from outside when the caller hangs up."""
        tasks = [
            asyncio.create_task(self._run_flow(), name="dialog"),
            asyncio.create_task(self.playback.run(), name="playback"),
            asyncio.create_task(self._pump_speech(), name="speech-pump"),
        ]
        dialog = tasks[0]
        outcome: CallOutcome | None = None
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if dialog in done:
                outcome = dialog.result()
            else:  # playback or the speech pump stopped mid-call: never leave dead air
                failed = done.pop()
                raise failed.exception() or SpeechSessionError("closed", "speech session ended")
        except SpeechSessionError as exc:
            self._metrics.speech_errors.labels(type=exc.error_type).inc()
            log.error("speech session failed; apologising and ending the call", error=str(exc))
            outcome = CallOutcome("apologise", message=APOLOGY)
        except Exception:
            log.exception("call failed; apologising and ending the call")
            outcome = CallOutcome("apologise", message=APOLOGY)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(Exception):
                await self._speech.close()
            if outcome is not None:
                await self._outcomes.record(self.call.call_sid, outcome)
                log.info("call ending", outcome=outcome.action, number=outcome.number)
                await self._close_stream()

    async def _run_flow(self) -> CallOutcome:
        for step in self._flow.steps:
            if isinstance(step, SayStep):
                await self.say(step.say)
            elif isinstance(step, HangupStep):
                return HANGUP
        return HANGUP

    # --- What dialogs call --------------------------------------------------------------------

    async def say(self, text: str) -> PlaybackResult:
        """Speak ``text``; returns once it has played in full (final mark echoed) or was cut."""
        self._utterance_ids += 1
        utterance = Utterance(self._utterance_ids, text)
        self._synthesizing.append(utterance)
        log.info("bot says", utterance=utterance.id, text=text)
        await self._speech.send_text(text)
        await self._speech.flush()
        return await utterance.done

    # --- Speech session -> playback -----------------------------------------------------------

    async def _pump_speech(self) -> None:
        try:
            async for event in self._speech.events():
                if isinstance(event, SpeechAudio):
                    await self._on_audio(event.data)
                elif isinstance(event, SpeechTimestamps):
                    if self._synthesizing:
                        self._synthesizing[0].words.extend(event.words)
                elif isinstance(event, FlushComplete) and self._synthesizing:
                    self.playback.synthesis_complete(self._synthesizing.popleft())
        except SpeechSessionError as exc:
            self._fail_pending(exc)
            raise
        raise SpeechSessionClosed(None, "speech session ended mid-call")

    async def _on_audio(self, data: bytes) -> None:
        if not self._synthesizing:
            log.warning("speech audio with no utterance waiting for it; dropped", bytes=len(data))
            return
        await self.playback.enqueue(self._synthesizing[0], data)

    def _fail_pending(self, exc: SpeechSessionError) -> None:
        """A dead speech session must not leave the dialog waiting forever (dead air)."""
        while self._synthesizing:
            utterance = self._synthesizing.popleft()
            if not utterance.done.done():
                utterance.done.set_exception(exc)

    def _first_media_sent(self) -> None:
        self.start_to_first_media_s = time.monotonic() - self._started_at
        self._metrics.start_to_first_media.observe(self.start_to_first_media_s)
        log.info(
            "first media sent", start_to_first_media_ms=round(self.start_to_first_media_s * 1000)
        )
