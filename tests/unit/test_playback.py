"""Playback pacing and clearing, driven by a fake Twilio that records what it was sent."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from ivr_bridge.call.playback import Playback
from ivr_bridge.call.utterance import Utterance


class FakeTwilio:
    def __init__(self) -> None:
        self.frames: list[dict] = []

    async def send(self, event: str, text: str) -> None:
        frame = json.loads(text)
        assert frame["event"] == event
        self.frames.append(frame)

    def media_bytes(self) -> int:
        return sum(
            len(base64.b64decode(f["media"]["payload"]))
            for f in self.frames
            if f["event"] == "media"
        )

    def marks(self) -> list[str]:
        return [f["mark"]["name"] for f in self.frames if f["event"] == "mark"]


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.fixture
async def rig():
    twilio = FakeTwilio()
    playback = Playback(twilio.send, "MZ1", chunk_ms=100, lead_ms=300, grace_ms=60_000)
    task = asyncio.create_task(playback.run())
    yield twilio, playback
    task.cancel()


async def test_releases_only_lead_ahead_of_acknowledged_playback(rig) -> None:
    twilio, playback = rig
    utterance = Utterance(1, "hello")
    await playback.enqueue(utterance, b"\x01" * 8000)  # one second
    playback.synthesis_complete(utterance)
    await _settle()
    assert twilio.media_bytes() == 2400  # 300 ms lead, nothing acknowledged yet
    assert playback.audible
    playback.on_mark(twilio.marks()[0])
    await _settle()
    assert twilio.media_bytes() == 3200
    assert utterance.bytes_played == 800


async def test_every_media_frame_is_followed_by_a_mark_and_never_below_20ms(rig) -> None:
    twilio, playback = rig
    utterance = Utterance(1, "hi")
    await playback.enqueue(utterance, b"\x02" * 1000)
    playback.synthesis_complete(utterance)
    await _settle()
    events = [f["event"] for f in twilio.frames]
    assert events == ["media", "mark", "media", "mark"]
    sizes = [
        len(base64.b64decode(f["media"]["payload"])) for f in twilio.frames if f["event"] == "media"
    ]
    assert sizes == [800, 200]
    assert all(f["streamSid"] == "MZ1" for f in twilio.frames)


async def test_utterance_done_only_after_final_mark_echo(rig) -> None:
    twilio, playback = rig
    utterance = Utterance(1, "bye")
    await playback.enqueue(utterance, b"\x03" * 1600)
    playback.synthesis_complete(utterance)
    await _settle()
    first, last = twilio.marks()
    playback.on_mark(first)
    await _settle()
    assert not utterance.done.done()
    playback.on_mark(last)
    await _settle()
    result = utterance.done.result()
    assert result.played_ms == 200 and not result.interrupted
    assert playback.idle


async def test_clear_counts_only_played_audio_and_ignores_cleared_echoes(rig) -> None:
    twilio, playback = rig
    utterance = Utterance(1, "a long prompt")
    await playback.enqueue(utterance, b"\x04" * 16000)
    await _settle()
    playback.on_mark(twilio.marks()[0])
    await _settle()
    pending = twilio.marks()[1:]
    cut = await playback.clear()
    assert cut == [utterance]
    assert twilio.frames[-1]["event"] == "clear"
    for name in pending:  # Twilio echoes every pending mark after clear
        playback.on_mark(name)
    await _settle()
    result = utterance.done.result()
    assert result.interrupted
    assert result.played_ms == 100
    sent_after_clear = [
        f for f in twilio.frames[twilio.frames.index({"event": "clear", "streamSid": "MZ1"}) :]
    ]
    assert [f["event"] for f in sent_after_clear] == ["clear"]  # nothing stale follows


async def test_pause_holds_audio_and_resume_continues_without_loss(rig) -> None:
    twilio, playback = rig
    utterance = Utterance(1, "x")
    playback.pause()
    await playback.enqueue(utterance, b"\x05" * 2400)
    playback.synthesis_complete(utterance)
    await _settle()
    assert twilio.media_bytes() == 0
    playback.resume()
    await _settle()
    assert twilio.media_bytes() == 2400


async def test_lost_echo_falls_back_to_wall_clock() -> None:
    now = [0.0]
    twilio = FakeTwilio()
    playback = Playback(
        twilio.send, "MZ1", chunk_ms=100, lead_ms=100, grace_ms=500, clock=lambda: now[0]
    )
    task = asyncio.create_task(playback.run())
    utterance = Utterance(1, "y")
    await playback.enqueue(utterance, b"\x06" * 1600)
    playback.synthesis_complete(utterance)
    await _settle()
    assert twilio.media_bytes() == 800
    now[0] = 0.7  # 100 ms of audio + 500 ms grace elapsed, no echo ever came
    await asyncio.sleep(0.8)  # the loop's own fallback timer fires
    assert twilio.media_bytes() == 1600
    task.cancel()


async def test_release_loop_dies_when_cancelled_as_it_is_woken() -> None:
    """Hang-up cancels playback at any moment, even while an echo is waking it (3.11 wait_for
    swallowed exactly that cancellation and left the call unable to end)."""
    twilio = FakeTwilio()
    playback = Playback(twilio.send, "MZ1", chunk_ms=100, lead_ms=300, grace_ms=60_000)
    task = asyncio.create_task(playback.run())
    utterance = Utterance(1, "z")
    await playback.enqueue(utterance, b"\x07" * 800)
    playback.synthesis_complete(utterance)
    await _settle()
    playback.on_mark(twilio.marks()[-1])  # wakes the loop...
    task.cancel()  # ...in the same instant the call hangs up
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done and task.cancelled()


async def test_audio_waiting_for_room_is_dropped_when_its_utterance_is_cut() -> None:
    twilio = FakeTwilio()
    playback = Playback(twilio.send, "MZ1", lead_ms=100, grace_ms=60_000, max_buffer_ms=200)
    utterance = Utterance(1, "a prompt longer than the local buffer")
    await playback.enqueue(utterance, b"\x08" * 1600)  # fills the 200 ms buffer
    waiting = asyncio.create_task(playback.enqueue(utterance, b"\x09" * 1600))
    await _settle()
    assert not waiting.done()  # backpressure: the speech pump waits for room
    await playback.clear()
    await waiting
    assert playback.idle
    assert utterance.bytes_received == 1600


def _counting_rig() -> tuple[FakeTwilio, Playback, list[float]]:
    twilio = FakeTwilio()
    gaps: list[float] = []
    playback = Playback(
        twilio.send, "MZ1", chunk_ms=100, lead_ms=300, grace_ms=60_000, on_underrun=gaps.append
    )
    return twilio, playback, gaps


async def test_twilio_running_dry_inside_an_utterance_is_an_underrun() -> None:
    twilio, playback, gaps = _counting_rig()
    task = asyncio.create_task(playback.run())
    utterance = Utterance(1, "a prompt whose synthesis falls behind")
    await playback.enqueue(utterance, b"\x0a" * 1600)  # 200 ms, more to come
    await _settle()
    for name in twilio.marks():  # Twilio plays all of it: the caller now hears silence
        playback.on_mark(name)
    await _settle()
    assert gaps == []  # nothing to count until the audio is late *and* then comes
    await playback.enqueue(utterance, b"\x0b" * 800)
    playback.synthesis_complete(utterance)
    await _settle()
    assert len(gaps) == 1 and gaps[0] >= 0.0
    assert playback.underruns == 1
    task.cancel()


async def test_a_pause_between_two_utterances_is_not_an_underrun() -> None:
    twilio, playback, gaps = _counting_rig()
    task = asyncio.create_task(playback.run())
    first, second = Utterance(1, "Goodbye."), Utterance(2, "Next prompt.")
    await playback.enqueue(first, b"\x0c" * 1600)
    playback.synthesis_complete(first)
    await _settle()
    for name in twilio.marks():
        playback.on_mark(name)
    await _settle()
    assert first.done.done()
    await playback.enqueue(second, b"\x0d" * 1600)
    playback.synthesis_complete(second)
    await _settle()
    assert twilio.media_bytes() == 3200
    assert gaps == [] and playback.underruns == 0
    task.cancel()


async def test_silence_during_a_barge_in_pause_is_not_an_underrun() -> None:
    twilio, playback, gaps = _counting_rig()
    task = asyncio.create_task(playback.run())
    utterance = Utterance(1, "a prompt the caller talks over")
    await playback.enqueue(utterance, b"\x0e" * 4000)
    await _settle()
    playback.pause()  # speech onset: hold our audio, let Twilio drain
    for name in twilio.marks():
        playback.on_mark(name)
    await _settle()
    playback.resume()  # not confirmed (a cough): carry on
    await _settle()
    assert twilio.media_bytes() > 2400
    assert gaps == []
    task.cancel()


class SlowMediaTwilio(FakeTwilio):
    """A socket whose media write stalls (full send buffer) until released."""

    def __init__(self) -> None:
        super().__init__()
        self.media_started = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, event: str, text: str) -> None:
        if event == "media":
            self.media_started.set()
            await self.release.wait()
        await super().send(event, text)


async def test_clear_never_lands_between_a_frame_and_its_mark() -> None:
    """Otherwise a mark of the cleared prompt follows the clear, and the caller (or a mark-based
    stale-frame count) sees the cut prompt's audio after the barge-in."""
    twilio = SlowMediaTwilio()
    playback = Playback(twilio.send, "MZ1", chunk_ms=100, lead_ms=300, grace_ms=60_000)
    task = asyncio.create_task(playback.run())
    utterance = Utterance(1, "a prompt being sent as the caller barges in")
    await playback.enqueue(utterance, b"\x0f" * 8000)
    await twilio.media_started.wait()
    clearing = asyncio.create_task(playback.clear())
    await _settle()
    twilio.release.set()
    await clearing
    await _settle()
    events = [f["event"] for f in twilio.frames]
    assert events == ["media", "mark", "clear"]
    assert playback.stale_frames == 0
    task.cancel()


async def test_a_short_lead_sends_all_it_has_instead_of_holding_a_sliver(rig) -> None:
    """At an utterance's start speech arrives in ~120 ms pieces barely faster than real time;
    holding back the 20 ms past one chunk left Twilio a few ms from running dry."""
    twilio, playback = rig
    utterance = Utterance(1, "the start of a long prompt")
    await playback.enqueue(utterance, b"\x10" * 960)  # the speech service's first 120 ms
    await _settle()
    assert twilio.media_bytes() == 960
    await playback.enqueue(utterance, b"\x11" * 960)  # Twilio now holds 120 ms: top it up...
    await _settle()
    assert twilio.media_bytes() == 960 + 800  # ...in whole chunks once it holds half the lead


async def test_clear_is_sent_even_when_the_fallback_already_credited_every_mark() -> None:
    """Echoes can be late rather than lost: audio the wall-clock fallback assumed played may
    still sit in Twilio's buffer, so an interruption must still send ``clear``."""
    now = [0.0]
    twilio = FakeTwilio()
    playback = Playback(twilio.send, "MZ1", lead_ms=100, grace_ms=100, clock=lambda: now[0])
    task = asyncio.create_task(playback.run())
    utterance = Utterance(1, "late echoes")
    await playback.enqueue(utterance, b"\x0a" * 800)
    await _settle()
    now[0] = 5.0
    await asyncio.sleep(0.3)  # the loop's fallback credits the chunk: nothing pending any more
    assert playback.ledger.pending == 0
    await playback.clear()
    assert twilio.frames[-1]["event"] == "clear"
    task.cancel()


async def test_an_utterance_starts_only_once_its_cushion_is_queued() -> None:
    twilio = FakeTwilio()
    playback = Playback(twilio.send, "MZ1", lead_ms=300, grace_ms=60_000, start_ms=200)
    task = asyncio.create_task(playback.run())
    utterance = Utterance(1, "paced speech")
    await playback.enqueue(utterance, b"\x12" * 960)  # 120 ms: a near-real-time first chunk
    await _settle()
    assert twilio.media_bytes() == 0  # a late second chunk would stutter the first word
    await playback.enqueue(utterance, b"\x13" * 960)  # 240 ms queued: go
    await _settle()
    assert twilio.media_bytes() > 0
    short = Utterance(2, "OK.")
    await playback.enqueue(short, b"\x14" * 400)
    playback.synthesis_complete(short)  # finished before the cushion: nothing to wait for
    for name in twilio.marks():
        playback.on_mark(name)
    await _settle()
    assert twilio.media_bytes() == 960 * 2 + 400
    task.cancel()
