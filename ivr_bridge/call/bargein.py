"""Barge-in: the caller talks over the bot, the bot stops at once and cleanly, or carries on.

Two stages, so a cough never costs the caller a prompt:

1. *Onset* (first voiced frame, or nothing for a digit): if the prompt's policy lets speech
   interrupt, stop releasing new audio to Twilio (``Playback.pause``). What Twilio already holds
   (a few hundred ms) keeps playing, so a short pause is inaudible.
2. *Confirmed* (``min_speech_ms`` of speech, or a digit, per policy): ``clear`` Twilio, drop our
   queue, ``reset`` the speech session (its audio is dropped until the matching
   ``reset_complete``), settle the prompt as interrupted with what the caller heard.
   *Abandoned* (noise): resume exactly where playback paused; nothing lost, nothing repeated.

Decisions are synchronous (they run in the inbound-frame handler); the I/O of an interruption
runs in this object's one task, so no task is ever created per frame or per barge-in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from ivr_bridge.audio.codec import ulaw_duration_ms
from ivr_bridge.call.clock import CallClock
from ivr_bridge.call.control import BargeInPolicy
from ivr_bridge.call.heard import heard_text
from ivr_bridge.call.playback import Playback
from ivr_bridge.call.utterance import Utterance
from ivr_bridge.metrics import BridgeMetrics

log = structlog.get_logger(__name__)

InterruptedBy = Literal["speech", "dtmf"]


@dataclass(eq=False, slots=True)
class Prompt:
    """One ``say``/``play`` in progress and the policy it was given."""

    utterance: Utterance
    policy: BargeInPolicy
    interrupted_by: InterruptedBy | None = None
    heard_text: str | None = None
    handled: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once an interruption finished (clear and reset sent): the dialog may speak again."""

    def allows(self, by: InterruptedBy) -> bool:
        mode = self.policy.mode
        if mode == "none" or (mode != "any" and mode != by):
            return False
        # The ignore window protects the prompt's opening words, as the caller hears them.
        return self.utterance.played_ms >= self.policy.ignore_first_ms

    @property
    def active(self) -> bool:
        return not self.utterance.done.done()


@dataclass(frozen=True, slots=True)
class _Request:
    by: InterruptedBy
    onset_ms: float
    onset_wall: float


class BargeInController:
    def __init__(
        self,
        *,
        playback: Playback,
        clock: CallClock,
        metrics: BridgeMetrics,
        cancel_synthesis: Callable[[Utterance], Awaitable[None]],
        record_event: Callable[..., None],
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        self._playback = playback
        self._clock = clock
        self._metrics = metrics
        self._cancel_synthesis = cancel_synthesis
        self._record = record_event
        self._wall = wall
        self.prompt: Prompt | None = None
        self._paused_at: tuple[float, float] | None = None
        """(call ms, wall s) of the onset that paused playback, while it is paused."""
        self._requests: asyncio.Queue[_Request] = asyncio.Queue(maxsize=4)
        self.barge_ins = 0
        self.false_interruptions = 0

    # --- The prompt being spoken --------------------------------------------------------------

    def begin(self, utterance: Utterance, policy: BargeInPolicy) -> Prompt:
        self.prompt = Prompt(utterance, policy)
        return self.prompt

    async def finish(self, prompt: Prompt) -> None:
        """The prompt settled; if it was cut, wait until the interruption is fully handled so
        the dialog's next words can never be sent before the speech ``reset``."""
        if prompt.interrupted_by is not None:
            await prompt.handled.wait()
        if self.prompt is prompt:
            self.prompt = None

    @property
    def bot_audible(self) -> bool:
        """A prompt is being said and the caller can hear it (Twilio holds audio of it, or
        some of it has played and more is to come: a pause between two sentences, the next one
        still being synthesised): the listener then wants a second opinion before it calls a
        sound speech. A cough in that pause must not cut the rest of the prompt."""
        prompt = self.prompt
        return (
            prompt is not None
            and prompt.active
            and prompt.interrupted_by is None
            and (self._playback.audible or prompt.utterance.bytes_played > 0)
        )

    def _interruptible(self, by: InterruptedBy) -> Prompt | None:
        prompt = self.prompt
        if prompt is None or not prompt.active or prompt.interrupted_by is not None:
            return None
        return prompt if prompt.allows(by) else None

    # --- Caller events (synchronous: called from the inbound-frame handler) -------------------

    def on_onset(self, at_ms: float) -> None:
        if self._paused_at is None and self._interruptible("speech") is not None:
            self._playback.pause()
            self._paused_at = (at_ms, self._wall())

    def on_confirmed(self, onset_ms: float) -> None:
        if self._interruptible("speech") is not None:
            wall = self._paused_at[1] if self._paused_at else self._wall()
            self._request(_Request("speech", onset_ms, wall))
        else:
            self._resume()

    def on_abandoned(self, onset_ms: float, at_ms: float) -> None:
        if self._paused_at is None:
            return
        self.false_interruptions += 1
        self._metrics.false_interruptions.inc()
        self._record("barge_in_abandoned", onset_ms=onset_ms, paused_ms=at_ms - onset_ms)
        self._resume()

    def on_dtmf(self, at_ms: float) -> None:
        if self._interruptible("dtmf") is not None:
            self._request(_Request("dtmf", at_ms, self._wall()))

    def _resume(self) -> None:
        if self._paused_at is not None:
            self._paused_at = None
            self._playback.resume()

    def _request(self, request: _Request) -> None:
        if not self._requests.full():
            self._requests.put_nowait(request)

    # --- The interruption itself (the controller's one task) ----------------------------------

    async def run(self) -> None:
        """Owned by the conductor; cancelled with the call."""
        while True:
            request = await self._requests.get()
            prompt = self._interruptible(request.by)
            if prompt is None:  # finished or already cut while the request waited
                self._resume()
                continue
            await self._interrupt(prompt, request)

    async def _interrupt(self, prompt: Prompt, request: _Request) -> None:
        prompt.interrupted_by = request.by
        try:
            await self._cut(prompt, request)
        finally:
            prompt.handled.set()  # never leave the dialog waiting, even if the socket died

    async def stop_prompt(self) -> None:
        """Silence whatever is being said now (the call is ending from outside): no barge-in,
        no metrics, just quiet, so final words can follow at once."""
        prompt = self.prompt
        if prompt is None or not prompt.active:
            return
        try:
            await self._silence(prompt.utterance)
            prompt.utterance.settle()
        finally:
            prompt.handled.set()

    async def _silence(self, utterance: Utterance) -> None:
        await self._playback.clear()  # Twilio first: every ms here is heard by the caller
        utterance.interrupted = True
        await self._cancel_synthesis(utterance)
        self._paused_at = None
        self._playback.resume()

    async def _cut(self, prompt: Prompt, request: _Request) -> None:
        utterance = prompt.utterance
        cleared_before = self._playback.clears_sent
        await self._silence(utterance)
        clear_ms, clear_wall = self._clock.now_ms(), self._wall()
        total_ms = None
        if utterance.synthesis_complete:
            total_ms = ulaw_duration_ms(utterance.bytes_received)
        prompt.heard_text = heard_text(
            utterance.text, utterance.words, utterance.played_ms, total_ms, interrupted=True
        )
        utterance.settle()
        call_latency_ms = max(0.0, clear_ms - request.onset_ms)
        wall_latency_ms = (clear_wall - request.onset_wall) * 1000
        self.barge_ins += 1
        self._metrics.barge_ins.labels(by=request.by).inc()
        self._metrics.barge_in_latency.observe(call_latency_ms / 1000)
        fields: dict[str, Any] = {
            "utterance": utterance.id,
            "by": request.by,
            "onset_ms": request.onset_ms,
            "clear_sent": self._playback.clears_sent > cleared_before,
            "onset_to_clear_ms": round(call_latency_ms, 1),
            "onset_to_clear_wall_ms": round(wall_latency_ms, 2),
            "played_ms": utterance.played_ms,
            "heard_text": prompt.heard_text,
        }
        self._record("barge_in", **fields)
