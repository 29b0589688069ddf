"""RecoveringSpeech: a stalled or lost speech session is replaced mid-utterance and the words the
caller has not heard yet are spoken by the replacement; refusals and hopeless cases give up fast.

Timing here is wall time at small scale (stall 0.1 s); every assertion on it has a floor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ivr_bridge.speech.recovering import RecoveringSpeech
from ivr_bridge.speech.session import (
    FlushComplete,
    ResetComplete,
    SpeechAudio,
    SpeechEvent,
    SpeechSessionError,
    SpeechTimestamps,
    WordTiming,
)
from tests.unit.lmnt_fakes import wait_until
from tests.unit.speech_fakes import FakeSession

WORDS = (
    WordTiming("Your", 0.0, 0.2),
    WordTiming("balance", 0.2, 0.4),
    WordTiming("is", 0.6, 0.2),
    WordTiming("twelve", 0.8, 0.3),
    WordTiming("dollars.", 1.1, 0.4),
)
TEXT = "Your balance is twelve dollars."


class Service:
    """Hands out fake sessions; the first ``failures`` opens raise like a server still down."""

    def __init__(self, failures: int = 0, refuse: str | None = None) -> None:
        self.sessions: list[FakeSession] = []
        self.failures = failures
        self.refuse = refuse

    async def open(self) -> FakeSession:
        if self.refuse:
            raise SpeechSessionError(self.refuse, "no")
        if self.failures:
            self.failures -= 1
            raise SpeechSessionError("connection_error", "refused")
        session = FakeSession(f"s{len(self.sessions) + 1}")
        self.sessions.append(session)
        return session


def _speech(first: FakeSession, service: Service, **kw: float) -> RecoveringSpeech:
    events: list[tuple[str, dict[str, object]]] = []
    speech = RecoveringSpeech(
        first,
        service.open,
        stall_s=kw.get("stall_s", 0.1),
        silence_s=kw.get("silence_s", 0.5),
        reconnect_s=kw.get("reconnect_s", 3.0),
        record_event=lambda kind, **fields: events.append((kind, fields)),
    )
    speech.recorded = events  # type: ignore[attr-defined]
    return speech


async def _collect(events: AsyncIterator[SpeechEvent], into: list[SpeechEvent]) -> None:
    async for event in events:
        into.append(event)


async def test_a_stall_mid_sentence_is_mended_and_only_the_unheard_words_are_sent_again() -> None:
    first, service = FakeSession("s0"), Service()
    speech = _speech(first, service)
    got: list[SpeechEvent] = []
    pump = asyncio.create_task(_collect(speech.events(), got))
    await speech.send_text(TEXT)
    nonce = await speech.flush()
    # "Your balance" fully arrived (0.6 s of audio), then the service hangs.
    first.emit(SpeechTimestamps(WORDS[:2]), SpeechAudio(b"\x01" * 4800))
    await wait_until(lambda: service.sessions and service.sessions[0].sent)
    replacement = service.sessions[0]
    assert first.closed
    assert replacement.texts == ["is twelve dollars."]
    [(_, real)] = [m for m in replacement.sent if m[0] == "flush"]
    replacement.emit(
        SpeechTimestamps((WordTiming("is", 0.0, 0.2),)),
        SpeechAudio(b"\x02" * 800),
        FlushComplete(real),  # type: ignore[arg-type]
    )
    await wait_until(lambda: any(isinstance(e, FlushComplete) for e in got))
    assert got[-1] == FlushComplete(nonce)  # our nonce, not the replacement's
    stamps = [e for e in got if isinstance(e, SpeechTimestamps)]
    assert stamps[-1].words[0].start == pytest.approx(0.6)  # after the audio already heard
    kinds = [kind for kind, _ in speech.recorded]  # type: ignore[attr-defined]
    assert kinds == ["speech_mending", "speech_recovered"]
    await speech.close()
    await asyncio.wait_for(pump, 1)


async def test_a_service_that_stays_stuck_costs_at_most_the_silence_budget() -> None:
    first, service = FakeSession("s0"), Service()
    speech = _speech(first, service, stall_s=0.1, silence_s=0.4)
    got: list[SpeechEvent] = []
    await speech.send_text(TEXT)
    await speech.flush()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(SpeechSessionError, match="stalled"):
        await _collect(speech.events(), got)  # the replacement is silent too
    elapsed = loop.time() - started
    assert 0.35 <= elapsed  # it waited out the budget, it did not give up at the first stall
    assert len(service.sessions) == 1  # one replacement tried, then the call gives up
    assert ("speech_lost", {"error": "stalled", "recoveries": 1}) in speech.recorded  # type: ignore[attr-defined]
    await speech.close()


async def test_a_lost_socket_is_reopened_with_backoff_while_the_server_restarts() -> None:
    first, service = FakeSession("s0"), Service(failures=2)
    speech = _speech(first, service)
    got: list[SpeechEvent] = []
    pump = asyncio.create_task(_collect(speech.events(), got))
    await speech.send_text("Hello there.")
    await speech.flush()
    first.drop()
    await wait_until(lambda: service.sessions)
    assert service.sessions[0].texts == ["Hello there."]  # nothing of it had arrived
    assert speech.recoveries == 1
    await speech.send_text("More.")  # new text goes to the replacement
    assert service.sessions[0].texts[-1] == "More."
    await speech.close()
    await asyncio.wait_for(pump, 1)


async def test_a_refusal_is_not_retried() -> None:
    first, service = FakeSession("s0"), Service()
    speech = _speech(first, service)
    await speech.send_text("Hi.")
    await speech.flush()
    first.refuse("authentication_error")
    with pytest.raises(SpeechSessionError, match="authentication_error"):
        await _collect(speech.events(), [])
    assert service.sessions == []
    await speech.close()


async def test_an_unacknowledged_reset_is_mended_and_the_cut_text_is_never_spoken_again() -> None:
    first, service = FakeSession("s0"), Service()
    speech = _speech(first, service)
    got: list[SpeechEvent] = []
    pump = asyncio.create_task(_collect(speech.events(), got))
    await speech.send_text(TEXT)
    await speech.flush()
    reset = await speech.reset()  # barge-in; the service never says reset_complete
    await wait_until(lambda: service.sessions)
    assert service.sessions[0].texts == []
    await wait_until(lambda: ResetComplete(reset) in got)  # the call is not left waiting for it
    await speech.send_text("Sure, billing.")
    assert service.sessions[0].texts == ["Sure, billing."]
    await speech.close()
    await asyncio.wait_for(pump, 1)


async def test_an_idle_session_is_never_called_stalled() -> None:
    first, service = FakeSession("s0"), Service()
    speech = _speech(first, service)
    pump = asyncio.create_task(_collect(speech.events(), []))
    await asyncio.sleep(0.5)  # five stall periods with nothing owed
    assert service.sessions == [] and not first.closed
    await speech.close()
    await asyncio.wait_for(pump, 1)


async def test_a_flush_after_a_long_idle_spell_is_given_its_full_stall_time() -> None:
    """The wait for audio starts at the flush, not at the last event before a long silence
    (the caller talking for ten seconds is no reason to give the speech service none)."""
    first, service = FakeSession("s0"), Service()
    speech = _speech(first, service, stall_s=0.3)
    pump = asyncio.create_task(_collect(speech.events(), []))
    await asyncio.sleep(0.5)  # idle: longer than the stall limit
    await speech.send_text("Hello.")
    await speech.flush()
    await asyncio.sleep(0.1)  # well inside the stall limit, measured from the flush
    first.emit(SpeechAudio(b"\x01" * 800))
    await asyncio.sleep(0.1)
    assert service.sessions == [] and not first.closed, "a healthy session was replaced"
    await speech.close()
    await asyncio.wait_for(pump, 1)
