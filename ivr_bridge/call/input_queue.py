"""The caller's inputs on their way to the dialog: bounded, on the call clock, nothing lost.

What a dialog reads with ``next_input`` comes through here, with the rules a phone menu needs:

- *Type-ahead*: keys are kept until a listening step takes them (VoiceXML's type-ahead buffer),
  whether they were pressed before the dialog started, during a prompt that could not take them,
  or between steps; a step that wants fresh speech drops old speech but keeps the keys. A prompt
  that keys may interrupt is not spoken over keys already waiting (the conductor skips it).
- *A finish key belongs to its entry*: after an entry reached its maximum length, the finish
  key the caller presses out of habit (``12345678#``) is swallowed, so it neither interrupts
  the next prompt nor answers the next question.
- Bounded: when full, the oldest input goes, so a caller mashing keys cannot grow memory.
"""

from __future__ import annotations

import asyncio
from collections import deque

from ivr_bridge.call.clock import CallClock
from ivr_bridge.call.control import BargeInPolicy
from ivr_bridge.call.inputs import CallerInput, DtmfInput

MAX_PENDING_INPUTS = 64


class CallerInputs:
    def __init__(self, clock: CallClock, maxsize: int = MAX_PENDING_INPUTS) -> None:
        self._clock = clock
        self._items: deque[CallerInput] = deque(maxlen=maxsize)
        self._wakeup = asyncio.Event()
        self._swallow: tuple[str, float] | None = None
        self.swallowed_keys = 0

    # --- from the line -----------------------------------------------------------------------

    def push(self, item: CallerInput) -> None:
        self._items.append(item)
        self._wakeup.set()

    def swallows(self, digit: str, at_ms: float) -> bool:
        """Whether this key press is an entry's trailing finish key (then it is consumed)."""
        if self._swallow is None:
            return False
        key, until_ms = self._swallow
        self._swallow = None
        if digit == key and at_ms <= until_ms:
            self.swallowed_keys += 1
            return True
        return False

    # --- for the dialog ------------------------------------------------------------------------

    def keys_waiting(self) -> bool:
        return any(isinstance(item, DtmfInput) for item in self._items)

    def keys_would_cut(self, policy: BargeInPolicy) -> bool:
        """Keys typed ahead would cut a prompt with this policy at its first frame: then the
        prompt is not started at all."""
        mode = policy.mode
        return mode in ("any", "dtmf") and policy.ignore_first_ms <= 0 and self.keys_waiting()

    def swallow_key(self, digit: str, within_ms: float) -> None:
        """The next press of ``digit`` within ``within_ms`` of now is swallowed; one queued
        already (pressed faster than the entry ended) is removed at once."""
        first = self._items[0] if self._items else None
        if isinstance(first, DtmfInput) and first.digit == digit:
            self._items.popleft()
            self.swallowed_keys += 1
            return
        self._swallow = (digit, self._clock.now_ms() + within_ms)

    def discard(self, *, keys: bool = True) -> None:
        """Drop what is waiting; ``keys=False`` keeps the keys typed ahead."""
        if keys:
            self._items.clear()
        else:
            kept = [item for item in self._items if isinstance(item, DtmfInput)]
            self._items.clear()
            self._items.extend(kept)

    async def next(self, timeout_ms: float | None) -> CallerInput | None:
        """The next input; None after ``timeout_ms`` of call time (None: wait for ever)."""
        if self._items:
            return self._items.popleft()
        if timeout_ms is None:
            while not self._items:
                self._wakeup.clear()
                await self._wakeup.wait()
            return self._items.popleft()
        deadline = self._clock.now_ms() + timeout_ms
        while not self._items:
            self._wakeup.clear()
            waiter = asyncio.ensure_future(self._wakeup.wait())
            timer = asyncio.ensure_future(self._clock.sleep_until(deadline))
            try:
                await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                timer.cancel()
            if not self._items and timer.done() and not timer.cancelled():
                return None
        return self._items.popleft()
