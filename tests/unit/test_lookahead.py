"""Listening ahead: the listener's pauses, the short wait, and the look-ahead's bookkeeping.

The listener is fed frame by frame on the call clock (as the media handler does); the look-ahead
runs a scripted recogniser whose results the tests release, so every ordering is explicit.
"""

from __future__ import annotations

import asyncio

import pytest

from ivr_bridge.call.inputs import SpeechInput
from ivr_bridge.call.listener import Listener, ListenerSettings
from ivr_bridge.call.lookahead import Ahead, LookAhead, Verdict
from tests.unit.test_vad import LOUD, SILENCE, Sink, feed

SETTINGS = ListenerSettings(end_silence_ms=600, answered_silence_ms=200, probe_after_ms=40)


class Pauses:
    """Records what the listener tells a look-ahead."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float]] = []

    def on_pause(self, speech: SpeechInput, voiced_end_ms: float) -> None:
        self.events.append(("pause", voiced_end_ms))

    def on_resumed(self) -> None:
        self.events.append(("resumed", 0))

    def on_delivered(self, speech: SpeechInput) -> None:
        self.events.append(("delivered", speech.voice_end_ms))


def _listener() -> tuple[Listener, Sink, Pauses]:
    sink, pauses = Sink(), Pauses()
    listener = Listener(sink, SETTINGS)
    listener.ahead = pauses
    return listener, sink, pauses


def test_each_pause_is_offered_once_and_voice_after_it_supersedes_it() -> None:
    listener, sink, pauses = _listener()
    t = feed(listener, [SILENCE] * 20)
    t = feed(listener, [LOUD] * 20, t)  # speech 400-800
    t = feed(listener, [SILENCE] * 10, t)  # a 200 ms pause: offered once, at 40 ms of it
    t = feed(listener, [LOUD] * 10, t)  # the caller goes on (1000-1200)
    feed(listener, [SILENCE] * 40, t)
    assert pauses.events == [
        ("pause", 800),
        ("resumed", 0),
        ("pause", 1200),
        ("delivered", 1200),
    ]
    assert [e[0] for e in sink.events] == ["onset", "confirmed", "input"]


def test_without_an_answer_the_full_wait_holds() -> None:
    listener, sink, _ = _listener()
    t = feed(listener, [SILENCE] * 20)
    t = feed(listener, [LOUD] * 20, t)
    t = feed(listener, [SILENCE] * 29, t)  # 580 ms
    assert [e[0] for e in sink.events] == ["onset", "confirmed"]
    feed(listener, [SILENCE] * 2, t)
    assert sink.events[-1][0] == "input"


def test_an_answer_ends_the_utterance_after_the_short_wait() -> None:
    listener, sink, _ = _listener()
    t = feed(listener, [SILENCE] * 20)
    t = feed(listener, [LOUD] * 20, t)  # voice ends at 800
    t = feed(listener, [SILENCE] * 3, t)  # 60 ms of silence: the pause was offered
    listener.end_early(800)
    assert [e[0] for e in sink.events] == ["onset", "confirmed"], "60 ms is under the short wait"
    t = feed(listener, [SILENCE] * 6, t)  # 180 ms
    assert sink.events[-1][0] == "confirmed"
    feed(listener, [SILENCE], t)  # 200 ms: over
    kind, _start, end, _ = sink.events[-1]
    assert kind == "input" and end == 1000  # 200 ms of trailing silence kept


def test_an_answer_that_comes_after_the_short_wait_ends_the_utterance_at_once() -> None:
    listener, sink, _ = _listener()
    t = feed(listener, [SILENCE] * 20)
    t = feed(listener, [LOUD] * 20, t)
    feed(listener, [SILENCE] * 15, t)  # 300 ms: the recogniser was slower than the wait
    listener.end_early(800)
    assert sink.events[-1][0] == "input"


def test_an_answer_for_words_the_caller_has_since_added_to_is_ignored() -> None:
    listener, sink, _ = _listener()
    t = feed(listener, [SILENCE] * 20)
    t = feed(listener, [LOUD] * 20, t)
    t = feed(listener, [SILENCE] * 5, t)
    t = feed(listener, [LOUD] * 10, t)  # went on: voice now ends at 1100
    t = feed(listener, [SILENCE] * 15, t)
    listener.end_early(800)  # the old pause's verdict arrives late
    feed(listener, [SILENCE] * 10, t)
    assert sink.events[-1][0] == "confirmed", "the full wait still holds for the longer words"


class Script(Ahead[str]):
    """A recogniser whose results the test releases."""

    def __init__(self, answering: set[str]) -> None:
        self.pending: list[tuple[SpeechInput, asyncio.Future[str]]] = []
        self.answering = answering
        self.drafts: list[str] = []
        self.resumed = 0

    async def recognize(self, speech: SpeechInput) -> str:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.pending.append((speech, future))
        return await future

    def verdict(self, result: str) -> Verdict | None:
        return "answered" if result in self.answering else None

    def on_draft(self, result: str, speech: SpeechInput) -> None:
        self.drafts.append(result)

    def on_resumed(self) -> None:
        self.resumed += 1


class Ends:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def end_early(self, voiced_end_ms: float, verdict: Verdict) -> None:
        self.calls.append(voiced_end_ms)


def _speech(end: float) -> SpeechInput:
    return SpeechInput(b"\0\0" * 80, 0.0, end + 40, speech_end_ms=end)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_pause_that_answers_ends_early_and_its_result_is_the_utterances() -> None:
    script, ends, outcomes = Script({"billing"}), Ends(), []
    look = LookAhead(script, ends, on_outcome=outcomes.append)
    pause = _speech(800)
    look.on_pause(pause, 800)
    await _settle()
    script.pending[0][1].set_result("billing")
    await _settle()
    assert script.drafts == ["billing"] and ends.calls == [800]
    delivered = SpeechInput(pause.pcm16, 0.0, 1000, speech_end_ms=800)
    look.on_delivered(delivered)
    result = look.result(delivered)
    assert result.done() and result.result() == "billing"
    assert len(script.pending) == 1, "no second recognition of the same words"
    assert outcomes == ["early_end", "used"]


async def test_a_pause_the_caller_talked_past_is_dropped_and_recognised_anew() -> None:
    script, ends, outcomes = Script(set()), Ends(), []
    look = LookAhead(script, ends, on_outcome=outcomes.append)
    look.on_pause(_speech(800), 800)
    await _settle()
    script.pending[0][1].set_result("i want to")
    await _settle()
    look.on_resumed()
    assert script.resumed == 1
    look.on_pause(_speech(1500), 1500)
    await _settle()
    delivered = SpeechInput(b"\0\0" * 80, 0.0, 1700, speech_end_ms=1500)
    look.on_delivered(delivered)
    pending = look.result(delivered)
    assert not pending.done(), "the second pause's run is the utterance's, still running"
    script.pending[1][1].set_result("i want to pay")
    assert await pending == "i want to pay"
    assert ends.calls == [] and outcomes == ["dropped", "used"]


async def test_a_pause_still_running_when_the_caller_goes_on_is_cancelled() -> None:
    script = Script(set())
    look = LookAhead(script, Ends())
    look.on_pause(_speech(800), 800)
    await _settle()
    look.on_resumed()
    await _settle()
    assert script.pending[0][1].cancelled()
    assert script.resumed == 0, "no draft was given, so none is withdrawn"


async def test_an_utterance_never_probed_is_recognised_when_asked() -> None:
    script = Script(set())
    look = LookAhead(script, Ends())
    speech = _speech(900)
    look.on_delivered(speech)
    pending = look.result(speech)
    await _settle()
    assert len(script.pending) == 1 and script.pending[0][0] is speech
    script.pending[0][1].set_result("yes")
    assert await pending == "yes"


async def test_stop_and_close_leave_nothing_running() -> None:
    script, stopped = Script(set()), []
    look = LookAhead(script, Ends(), on_stop=stopped.append)
    look.on_pause(_speech(800), 800)
    other = look.result(_speech(300))
    await _settle()
    look.stop()
    look.close()
    await _settle()
    assert stopped == [look]
    assert all(f.cancelled() for _, f in script.pending)
    with pytest.raises(asyncio.CancelledError):
        await other
    look.on_pause(_speech(900), 900)  # after stop: ignored
    assert len(script.pending) == 2


def test_a_sentence_that_looks_done_waits_longer_than_a_mid_sentence_pause() -> None:
    listener, sink, _ = _listener()
    t = feed(listener, [SILENCE] * 20)
    t = feed(listener, [LOUD] * 20, t)  # voice ends at 800
    t = feed(listener, [SILENCE] * 3, t)
    listener.end_early(800, "sentence")
    t = feed(listener, [SILENCE] * 19, t)  # 440 ms: a caller's pause is still just a pause
    assert sink.events[-1][0] == "confirmed"
    feed(listener, [SILENCE] * 2, t)  # 480 ms: over the 450 ms wait, under the full 600
    assert sink.events[-1][0] == "input"
