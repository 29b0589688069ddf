"""Listening ahead: recognise the caller at every pause, and end the turn early when it is over.

A turn's answer used to wait for two things in a row: the end-of-utterance silence
(``end_silence_ms``, 600 ms) and then a recogniser run on the finished utterance (whisper: a
few hundred ms). Both are spent with the caller in silence. But the words of an utterance are
all there the moment the caller *pauses*: the silence that may end it adds none. So at every
pause (``probe_after_ms`` of silence after speech) the utterance so far is recognised, while
the endpointing wait goes on:

- the caller stays quiet: the utterance is delivered, and its recognition is the pause's (done,
  or already running): no second run, the text is there when the silence ends;
- the words already answer the prompt (``Ahead.verdict``): a complete menu option
  (``answered``) ends the utterance after ``answered_silence_ms`` (200 ms), a sentence that
  ends as a sentence (``sentence``, weaker evidence: "I want to change." is one to whisper)
  after ``sentence_silence_ms`` (450 ms, longer than the pauses callers make mid-sentence),
  instead of the full wait (600 ms);
- the caller goes on: the pause's result is dropped (``on_resumed``), and the next pause
  recognises the longer utterance.

A dialog installs an ``Ahead`` for a listening turn (``CallControl.recognize_ahead``) and gets
the result of a delivered utterance from the handle (``AheadHandle.result``). Recognition runs
only at pauses (not on a timer while the caller talks), because whisper re-reads the whole
utterance on every run: a decode in mid-word is superseded before the utterance can end and
costs the CPU that other calls' answers need. At most one decode per call runs at a time.

``hear`` sees every inbound frame while installed, for a recogniser that streams (a Deepgram
live connection); ``on_draft`` is told each pause's result as it is ready, so a dialog may start
its reply speculatively (the LLM dialog asks the model) and drop it at ``on_resumed``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

from ivr_bridge.call.inputs import SpeechInput

T = TypeVar("T")
Verdict = Literal["answered", "sentence"]
"""How sure the words are to end the turn: a complete answer, or a sentence that looks done."""


class Ahead(Generic[T]):
    """What a dialog recognises ahead for one listening turn (override what it needs)."""

    def hear(self, at_ms: float, ulaw: bytes) -> None:
        """Every inbound 20 ms frame (call ms) while installed; must stay cheap."""

    async def recognize(self, speech: SpeechInput) -> T:
        """Recognise the utterance (so far, at a pause; or whole, when it was not probed)."""
        raise NotImplementedError

    def verdict(self, result: T) -> Verdict | None:
        """Do the words so far end the turn (the shorter wait), or None (the full wait)?"""
        return None

    def on_draft(self, result: T, speech: SpeechInput) -> None:
        """A pause's recognition is ready and the caller is still silent (the turn may end
        here): a dialog may start its reply now, and keep it only if ``result`` is what
        ``AheadHandle.result`` later returns for the delivered utterance."""

    def on_resumed(self) -> None:
        """The caller went on talking after the pause whose draft was given: drop it."""


class AheadHandle(Protocol[T]):
    def result(self, speech: SpeechInput) -> asyncio.Future[T]:
        """The recognition of a delivered utterance: its last pause's (no second run) when
        that pause heard all of it, else a run started now."""
        ...

    def stop(self) -> None:
        """Listening ahead is over for this turn (a running decode is cancelled)."""
        ...


class ListenerControl(Protocol):
    """What the look-ahead may ask of the listener (``call.listener.Listener``)."""

    def end_early(self, voiced_end_ms: float, verdict: Verdict) -> None: ...


@dataclass(slots=True)
class _Probe(Generic[T]):
    speech: SpeechInput
    """The utterance so far, at the pause."""
    voiced_end_ms: float
    task: asyncio.Future[T]
    resumed: bool = False


@dataclass(slots=True)
class LookAheadStats:
    probes: int = 0
    """Pauses recognised."""
    used: int = 0
    """Delivered utterances whose recognition was a pause's (no second run)."""
    dropped: int = 0
    """Pause recognitions the caller talked past (superseded)."""
    early_ends: int = 0
    """Utterances ended after the short wait because their words already answered."""


class LookAhead(Generic[T]):
    """The conductor's side: runs an installed ``Ahead`` at the listener's pauses."""

    def __init__(
        self,
        ahead: Ahead[T],
        listener: ListenerControl,
        *,
        on_outcome: Callable[[str], None] = lambda _outcome: None,
        on_words: Callable[[], None] = lambda: None,
        on_stop: Callable[[LookAhead[T]], None] = lambda _look: None,
    ) -> None:
        """``on_outcome``: told ``used``, ``dropped`` or ``early_end`` as they happen (metrics);
        ``on_words``: a delivered utterance's recognition resolved; ``on_stop``: stopped."""
        self.ahead = ahead
        self._listener = listener
        self._on_outcome = on_outcome
        self._on_words = on_words
        self._on_stop = on_stop
        self._probe: _Probe[T] | None = None
        self._delivered: dict[int, asyncio.Future[T]] = {}
        self._tasks: set[asyncio.Future[T]] = set()
        self.stats = LookAheadStats()
        self.stopped = False

    # --- listener events ------------------------------------------------------------------

    def on_pause(self, speech: SpeechInput, voiced_end_ms: float) -> None:
        """The caller paused: recognise the utterance so far (one decode at a time; a pause
        while one runs is recognised when it is done, if the caller is still silent)."""
        if self.stopped:
            return
        previous = self._probe
        same = previous is not None and previous.voiced_end_ms >= voiced_end_ms
        if previous is not None and same and not previous.resumed:
            return  # the same pause, already being recognised
        if previous is not None and not previous.task.done():
            previous.task.cancel()  # superseded: the caller said more since
        self.stats.probes += 1
        task = asyncio.ensure_future(self.ahead.recognize(speech))
        self._own(task)
        probe = _Probe(speech, voiced_end_ms, task)
        self._probe = probe
        task.add_done_callback(lambda _t: self._probe_done(probe))

    def on_resumed(self) -> None:
        """The caller talks again after a pause: its recognition is superseded."""
        probe = self._probe
        if probe is None or probe.resumed:
            return
        probe.resumed = True
        self.stats.dropped += 1
        if not probe.task.done():
            probe.task.cancel()
        elif not probe.task.cancelled() and probe.task.exception() is None:
            self.ahead.on_resumed()
        self._on_outcome("dropped")

    def on_delivered(self, speech: SpeechInput) -> None:
        """The utterance ended: its last pause's recognition is its own if nothing was said
        after that pause."""
        probe, self._probe = self._probe, None
        if probe is None or probe.resumed or probe.task.cancelled():
            return
        self.stats.used += 1
        self._on_outcome("used")
        self._delivered[id(speech)] = probe.task
        if len(self._delivered) > 8:  # never asked for (the dialog stopped listening)
            self._delivered.pop(next(iter(self._delivered)))

    def _probe_done(self, probe: _Probe[T]) -> None:
        task = probe.task
        if task.cancelled() or task.exception() is not None or probe.resumed or self.stopped:
            return
        if self._probe is not probe:
            return  # delivered already: the dialog awaits the result itself
        result = task.result()
        self.ahead.on_draft(result, probe.speech)
        verdict = self.ahead.verdict(result)
        if verdict is not None:
            self.stats.early_ends += 1
            self._on_outcome("early_end")
            self._listener.end_early(probe.voiced_end_ms, verdict)

    # --- the dialog's handle ------------------------------------------------------------------

    def result(self, speech: SpeechInput) -> asyncio.Future[T]:
        task = self._delivered.pop(id(speech), None)
        if task is None:
            task = asyncio.ensure_future(self.ahead.recognize(speech))
            self._own(task)
        if task.done():
            self._on_words()
        else:
            task.add_done_callback(lambda _t: self._on_words())
        return task

    def stop(self) -> None:
        if not self.stopped:
            self._on_stop(self)
        self.stopped = True
        if self._probe is not None and not self._probe.task.done():
            self._probe.task.cancel()
        self._probe = None
        self._delivered.clear()

    def close(self) -> None:
        """The call is over: nothing this look-ahead started keeps running."""
        self.stop()
        for task in list(self._tasks):
            task.cancel()

    def _own(self, task: asyncio.Future[T]) -> None:
        self._tasks.add(task)

        def forget(t: asyncio.Future[T]) -> None:
            self._tasks.discard(t)
            if not t.cancelled():
                with contextlib.suppress(BaseException):
                    t.exception()  # seen: the dialog's own await reports it

        task.add_done_callback(forget)


class RecognizeAtEnd(Generic[T]):
    """An ``AheadHandle`` with no pauses to listen at: each result is a run started when asked.

    For call fakes (``call.testing.ScriptedCall``) and any call that cannot listen ahead;
    ``drafted`` results (a fake's scripted pause) are handed out instead, like a real pause's."""

    def __init__(self, ahead: Ahead[T]) -> None:
        self.ahead = ahead
        self.stopped = False
        self.drafted: dict[int, asyncio.Future[T]] = {}

    async def draft(self, speech: SpeechInput) -> None:
        """Recognise ``speech`` as at a pause just before it ended, telling ``on_draft``."""
        task = asyncio.ensure_future(self.ahead.recognize(speech))
        result = await task
        self.drafted[id(speech)] = task
        self.ahead.on_draft(result, speech)

    def result(self, speech: SpeechInput) -> asyncio.Future[T]:
        task = self.drafted.pop(id(speech), None)
        return task if task is not None else asyncio.ensure_future(self.ahead.recognize(speech))

    def stop(self) -> None:
        self.stopped = True
