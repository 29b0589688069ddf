"""The call conductor: one per call, the only place that decides who speaks and when it ends.

It owns three tasks — the dialog, the playback release loop and the speech-session pump — and
cancels all of them when the call ends, whichever way it ends. Mechanics live below it:
``Playback`` (frames, marks, clear), the speech session (LMNT), the dialog (flow steps or LLM),
which talks to the call only through the ``CallControl`` API implemented here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from ivr_bridge.call.clock import CallClock
from ivr_bridge.call.inputs import CallerInput, DtmfInput
from ivr_bridge.call.outcomes import HANGUP, CallOutcome, OutcomeStore
from ivr_bridge.call.playback import Playback, SendText
from ivr_bridge.call.utterance import Utterance
from ivr_bridge.dialog.control import BargeInPolicy, CallDetails, SayResult
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
MAX_EVENTS = 5000
MAX_PENDING_INPUTS = 64

Dialog = Callable[["CallConductor"], Awaitable[None]]
"""Runs the conversation; returns (or calls ``hangup``/``transfer``) when it is over."""


class CallEnding(Exception):
    """Raised inside the dialog by ``hangup``/``transfer`` so no step runs after the end."""


@dataclass(frozen=True, slots=True)
class PlaybackSettings:
    chunk_ms: int = 100
    lead_ms: int = 300
    grace_ms: int = 1000


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
    ) -> None:
        self.details = details
        self.clock = CallClock()
        self.events: list[dict[str, Any]] = []
        self._dialog = dialog
        self._speech = speech
        self._close_stream = close_stream
        self._outcomes = outcomes
        self._metrics = metrics
        self._started_at = started_at
        self.default_barge_in = default_barge_in or BargeInPolicy()
        self.playback = Playback(
            send,
            details.stream_sid,
            chunk_ms=playback.chunk_ms,
            lead_ms=playback.lead_ms,
            grace_ms=playback.grace_ms,
            on_first_media=self._first_media_sent,
        )
        self._synthesizing: deque[Utterance] = deque()
        self._utterance_ids = 0
        self._inputs: asyncio.Queue[CallerInput] = asyncio.Queue(MAX_PENDING_INPUTS)
        self._outcome: CallOutcome | None = None
        self.start_to_first_media_s: float | None = None

    # --- Inbound events (called by the media-stream handler; must stay cheap) -----------------

    def on_media(self, timestamp_ms: int, audio: bytes) -> None:
        self.clock.on_media(timestamp_ms)

    def on_dtmf(self, digit: str) -> None:
        at = self.clock.now_ms()
        self.record_event("dtmf", digit=digit, at_ms=at)
        self._push_input(DtmfInput(digit, at))

    def on_mark(self, name: str) -> None:
        self.playback.on_mark(name)

    def _push_input(self, item: CallerInput) -> None:
        if self._inputs.full():  # bounded: a caller mashing keys drops its oldest input
            self._inputs.get_nowait()
        self._inputs.put_nowait(item)

    # --- The call's life ----------------------------------------------------------------------

    async def run(self) -> None:
        """Run the dialog to its end. Cancelled from outside when the caller hangs up."""
        tasks = [
            asyncio.create_task(self._run_dialog(), name="dialog"),
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
                raise failed.exception() or SpeechSessionClosed(None, "speech pump stopped")
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
                await self._outcomes.record(self.details.call_sid, outcome)
                self.record_event("end", action=outcome.action, number=outcome.number)
                await self._close_stream()

    async def _run_dialog(self) -> CallOutcome:
        with contextlib.suppress(CallEnding):
            await self._dialog(self)
            await self._drain_playback()
        return self._outcome or HANGUP

    # --- CallControl: what dialogs call -------------------------------------------------------

    async def say(self, text: str, *, barge_in: BargeInPolicy | None = None) -> SayResult:
        """Speak ``text``; returns once it has played in full (final mark echoed) or was cut."""
        self._utterance_ids += 1
        utterance = Utterance(self._utterance_ids, text)
        self._synthesizing.append(utterance)
        self.record_event("bot_says", utterance=utterance.id, text=text)
        await self._speech.send_text(text)
        await self._speech.flush()
        return self._said(await utterance.done, text)

    async def play(
        self, ulaw: bytes, *, label: str, barge_in: BargeInPolicy | None = None
    ) -> SayResult:
        self._utterance_ids += 1
        utterance = Utterance(self._utterance_ids, label)
        self.record_event("bot_plays", utterance=utterance.id, label=label, ms=len(ulaw) // 8)
        await self.playback.enqueue(utterance, ulaw)
        self.playback.synthesis_complete(utterance)
        return self._said(await utterance.done, label)

    def _said(self, result: Any, text: str) -> SayResult:
        return SayResult(
            text=text,
            heard_text=text,
            played_ms=result.played_ms,
            interrupted=result.interrupted,
        )

    async def next_input(self, timeout_ms: float | None) -> CallerInput | None:
        if not self._inputs.empty() or timeout_ms is None:
            return await self._inputs.get()
        getter = asyncio.ensure_future(self._inputs.get())
        timer = asyncio.ensure_future(self.clock.sleep(timeout_ms))
        try:
            await asyncio.wait({getter, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        return None

    def discard_inputs(self) -> None:
        while not self._inputs.empty():
            self._inputs.get_nowait()

    def record_event(self, kind: str, **fields: Any) -> None:
        if len(self.events) < MAX_EVENTS:
            self.events.append({"kind": kind, "call_ms": round(self.clock.now_ms()), **fields})
        log.info(kind.replace("_", " "), **fields)

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
        pending = [u.done for u in self._synthesizing]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        await self.playback.wait_idle()

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
