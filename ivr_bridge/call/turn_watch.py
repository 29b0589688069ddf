"""The caller's turns as the conductor watches them for speed: listened to ahead, and timed.

Two things every turn goes through on its way to an answer, kept out of the conductor so it
stays about who speaks when: the dialog's listening ahead (``call.lookahead``: at most one
``LookAhead`` per call, replaced when a dialog installs another, gone when it stops) and the
turn's timing (``call.turn_timing``: the conductor stamps the moments, this reports them as the
call's ``turn_timing`` event and on ``ivr_turn_phase_seconds``). The look-ahead's outcomes are
counted here too: recognitions used or dropped, utterances ended early.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ivr_bridge.call.clock import CallClock
from ivr_bridge.call.listener import Listener
from ivr_bridge.call.lookahead import Ahead, AheadHandle, LookAhead, T
from ivr_bridge.call.turn_timing import TurnTiming
from ivr_bridge.metrics import BridgeMetrics


class TurnWatch:
    def __init__(
        self,
        listener: Listener,
        clock: CallClock,
        metrics: BridgeMetrics,
        record_event: Callable[..., None],
    ) -> None:
        self._listener = listener
        self._clock = clock
        self._metrics = metrics
        self._record_event = record_event
        self.timing = TurnTiming(self._timed)
        self._lookahead: LookAhead[Any] | None = None

    def hear(self, at_ms: float, ulaw: bytes) -> None:
        """Every inbound frame, before the listener: a live recogniser streams them all."""
        if self._lookahead is not None:
            self._lookahead.ahead.hear(at_ms, ulaw)

    def recognize_ahead(self, ahead: Ahead[T]) -> AheadHandle[T]:
        """``CallControl.recognize_ahead``: replaces the look-ahead installed before."""
        self.close()
        look = LookAhead(
            ahead,
            self._listener,
            on_outcome=self._outcome,
            on_words=lambda: self.timing.words_known(self._clock.now_ms()),
            on_stop=self._stopped,
        )
        self._lookahead = look
        self._listener.ahead = look
        return look

    def close(self) -> None:
        """The call is over (or a new look-ahead replaces this one): no decode left running."""
        if self._lookahead is not None:
            self._lookahead.close()

    def _stopped(self, look: LookAhead[Any]) -> None:
        if self._lookahead is look:
            self._lookahead = None
            self._listener.ahead = None

    def _outcome(self, outcome: str) -> None:
        if outcome == "early_end":
            self._metrics.early_endpoints.inc()
            self._record_event("early_endpoint")
        else:
            self._metrics.lookahead_recognitions.labels(result=outcome).inc()

    def _timed(self, phases: dict[str, int]) -> None:
        self._record_event("turn_timing", **{f"{k}_ms": v for k, v in phases.items()})
        for phase, ms in phases.items():
            self._metrics.turn_phase_seconds.labels(phase=phase).observe(ms / 1000)
