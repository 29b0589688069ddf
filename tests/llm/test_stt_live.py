"""Deepgram as one live stream per call (``DeepgramLive``) against the live stand-in.

Frames are fed on a made-up call clock, faster than real time; every wait polls for a condition
with a generous timeout, so a loaded machine makes the tests slower, never wrong.
"""

from __future__ import annotations

import asyncio
import math
import os
import struct
from collections.abc import AsyncIterator, Callable

import pytest

from ivr_bridge.audio.codec import pcm16_to_ulaw
from ivr_bridge.stt import DeepgramError, SttSettings
from ivr_bridge.stt.chooser import live_transcriber
from ivr_bridge.stt.deepgram_live import DeepgramLive
from tests.llm.standin_deepgram import DeepgramStandIn

FRAME_MS = 20
VOICE = pcm16_to_ulaw(
    b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(160)
    )
)
QUIET = b"\xff" * 160


@pytest.fixture
async def live(deepgram: DeepgramStandIn) -> AsyncIterator[DeepgramLive]:
    stream = DeepgramLive("dg-test-key", url=deepgram.url, endpointing_ms=300)
    yield stream
    await stream.close()


async def until(condition: Callable[[], bool], within_s: float = 10.0) -> None:
    """Poll (never a fixed sleep): true within ``within_s`` or the test fails."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def play(live: DeepgramLive, at_ms: float, ms: float, frame: bytes) -> float:
    """Feed ``ms`` of 20 ms frames from ``at_ms``; the call ms after them."""
    for i in range(int(ms // FRAME_MS)):
        live.feed(at_ms + i * FRAME_MS, frame)
        await asyncio.sleep(0)
    return at_ms + ms


async def test_one_connection_carries_every_utterance_to_its_own_turn(
    deepgram: DeepgramStandIn, live: DeepgramLive
) -> None:
    deepgram.transcripts.extend(["I'd like my balance.", "The savings account.", "Yes."])
    turns = []
    t = await play(live, 0, 400, QUIET)
    for _ in range(3):
        start = t
        t = await play(live, t, 600, VOICE)
        end = t
        t = await play(live, t, 800, QUIET)  # past endpointing: Deepgram finalises by itself
        turns.append((start, end))
    texts = [(await live.transcript(s, e)).text for s, e in turns]
    assert texts == ["I'd like my balance.", "The savings account.", "Yes."]
    assert deepgram.connections == 1 and live.stats.connections == 1
    query = deepgram.queries[0]
    assert query["interim_results"] == ["true"] and query["endpointing"] == ["300"]
    assert query["utterance_end_ms"] == ["1000"] and query["encoding"] == ["mulaw"]
    assert any(m["type"] == "Results" and not m["is_final"] for m in deepgram.sent)
    assert live.speech_final_at(turns[-1][1])
    # Asked again (the dialog's second look), a turn gives the same words: nothing consumed.
    assert (await live.transcript(*turns[1])).text == "The savings account."


async def test_a_final_straddling_two_turns_is_split_by_word_times(
    deepgram: DeepgramStandIn, live: DeepgramLive
) -> None:
    # Short pauses (< endpointing): Deepgram makes one final of both utterances on Finalize.
    deepgram.transcripts.append("one two three four five six")
    t = await play(live, 0, 600, VOICE)
    first = (0.0, t)
    t = await play(live, t, 200, QUIET)
    second_start = t
    t = await play(live, t, 600, VOICE)
    second = (second_start, t)
    a = await live.transcript(*first)
    b = await live.transcript(*second)
    words = a.text.split() + b.text.split()
    assert words == "one two three four five six".split()  # each word once, in order
    assert a.text and b.text


async def test_a_run_of_missing_frames_is_sent_as_silence_so_times_stay_aligned(
    deepgram: DeepgramStandIn, live: DeepgramLive
) -> None:
    deepgram.transcripts.extend(["before the gap", "after the gap"])
    t = await play(live, 1000, 400, VOICE)
    t = await play(live, t, 400, QUIET)
    t += 1000  # 50 frames lost on the way
    after = t
    t = await play(live, t, 400, VOICE)
    t = await play(live, t, 400, QUIET)
    text = (await live.transcript(after, after + 400)).text
    assert text == "after the gap"
    assert (await live.transcript(1000, 1400)).text == "before the gap"
    audio = deepgram.live_audio[0]
    await until(lambda: len(audio) >= (t - 1000) * 8)
    assert len(audio) == (t - 1000) * 8  # byte n is call ms 1000 + n / 8
    gap = audio[(1800 - 1000) * 8 : (2800 - 1000) * 8]
    assert gap == b"\xff" * len(gap)
    assert live.stats.filled_ms == 1000


async def test_finalize_gets_the_words_before_deepgrams_own_endpointing(
    deepgram: DeepgramStandIn, live: DeepgramLive
) -> None:
    deepgram.transcripts.append("Check my balance.")
    t = await play(live, 0, 700, VOICE)
    t = await play(live, t, 100, QUIET)  # a pause shorter than endpointing: no final yet
    result = await live.transcript(0, 700)
    assert result.text == "Check my balance." and result.confidence > 0.9
    assert result.engine == "deepgram:nova-3"
    assert "Finalize" in deepgram.controls
    final = next(m for m in deepgram.sent if m["type"] == "Results" and m["is_final"])
    assert final["from_finalize"] is True
    assert not live.speech_final_at(700)  # Deepgram did not say the utterance ended


async def test_utterance_end_follows_the_last_word(
    deepgram: DeepgramStandIn, live: DeepgramLive
) -> None:
    deepgram.transcripts.append("Hello there.")
    t = await play(live, 0, 500, VOICE)
    await play(live, t, 1400, QUIET)
    await until(lambda: any(m["type"] == "UtteranceEnd" for m in deepgram.sent))
    end = next(m for m in deepgram.sent if m["type"] == "UtteranceEnd")
    assert end["last_word_end"] == pytest.approx(0.5)


async def test_keepalive_holds_the_stream_through_a_silence_past_the_idle_limit(
    deepgram: DeepgramStandIn,
) -> None:
    deepgram.idle_timeout_s = 0.5
    deepgram.transcripts.extend(["first", "second"])
    live = DeepgramLive("dg-test-key", url=deepgram.url, keepalive_s=0.1)
    try:
        t = await play(live, 0, 400, VOICE)
        t = await play(live, t, 400, QUIET)
        assert (await live.transcript(0, 400)).text == "first"
        # No audio at all (the bot is talking) for several idle limits.
        await until(lambda: live.stats.keepalives >= 15)
        assert deepgram.idle_closes == 0 and deepgram.controls.count("KeepAlive") >= 10
        later = t + 5000
        t = await play(live, later, 400, VOICE)
        await play(live, t, 400, QUIET)
        assert (await live.transcript(later, later + 400)).text == "second"
        assert deepgram.connections == 1
    finally:
        await live.close()


async def test_without_keepalive_the_stand_in_closes_an_idle_stream_like_deepgram(
    deepgram: DeepgramStandIn,
) -> None:
    deepgram.idle_timeout_s = 0.2
    live = DeepgramLive(
        "dg-test-key", url=deepgram.url, keepalive_s=60, max_reconnects=0, reconnect_backoff_s=0
    )
    try:
        await live.start()
        await until(lambda: deepgram.idle_closes == 1)
        with pytest.raises(DeepgramError, match=r"1011 .*net0001"):
            await until_failed(live)
    finally:
        await live.close()


async def until_failed(live: DeepgramLive) -> None:
    await until(lambda: live._failure is not None)
    await live.transcript(0, 0)


async def test_a_dropped_socket_is_reconnected_and_the_unfinalised_words_resent(
    deepgram: DeepgramStandIn, live: DeepgramLive
) -> None:
    deepgram.transcripts.extend(["before the drop", "across the drop"])
    t = await play(live, 0, 400, VOICE)
    t = await play(live, t, 400, QUIET)
    assert (await live.transcript(0, 400)).text == "before the drop"
    start = t
    t = await play(live, t, 400, VOICE)  # heard, not finalised yet
    await until(lambda: len(deepgram.live_audio[0]) >= t * 8)
    deepgram.drop()
    await until(lambda: live.stats.reconnects == 1)
    t = await play(live, t, 200, VOICE)
    result = await live.transcript(start, t)
    assert result.text == "across the drop"
    assert deepgram.connections == 2
    # The new connection's clock starts where the finals stopped: the unfinalised audio again.
    assert len(deepgram.live_audio[1]) == (t - 800) * 8


async def test_close_sends_closestream_waits_for_metadata_and_leaves_no_task(
    deepgram: DeepgramStandIn,
) -> None:
    before = asyncio.all_tasks()
    live = DeepgramLive("dg-test-key", url=deepgram.url)
    await live.start()
    await play(live, 0, 200, VOICE)
    await live.close()
    assert deepgram.controls[-1] == "CloseStream"
    assert deepgram.sent[-1]["type"] == "Metadata"
    assert asyncio.all_tasks() - before == set()
    live.feed(200, VOICE)  # after close: ignored, nothing restarted
    assert asyncio.all_tasks() - before == set()
    await live.transcript(0, 200)  # final already (CloseStream's last results)
    with pytest.raises(DeepgramError, match="closed"):
        live._words.final_until_ms = None  # as if nothing had been finalised before the close
        await live.transcript(0, 200)


async def test_feed_never_blocks_when_deepgram_stalls() -> None:
    deepgram = DeepgramStandIn(receive_buffer=4096)
    await deepgram.start()
    live = DeepgramLive("dg-test-key", url=deepgram.url, max_queue_frames=50)
    try:
        await live.start()
        deepgram.stall_reading = True
        second = os.urandom(8000)  # 1 s per frame, to fill the socket buffers quickly
        at = 0.0
        for _ in range(20_000):
            live.feed(at, second)
            at += 1000
            assert len(live._pending) <= 50
            if live.stats.dropped_frames:
                break
            await asyncio.sleep(0)
        assert live.stats.dropped_frames >= 1
        for _ in range(100):  # a burst while stalled: every frame returns at once, counted
            live.feed(at, second)
            at += 1000
        assert live.stats.dropped_frames >= 100
        deepgram.stall_reading = False
        await until(lambda: live.stats.reconnects >= 1)  # the stalled connection was given up
    finally:
        await live.close()
        await deepgram.stop()


async def test_a_wrong_key_is_a_clear_error_without_the_key(deepgram: DeepgramStandIn) -> None:
    live = DeepgramLive("wrong-key-123", url=deepgram.url)
    with pytest.raises(DeepgramError) as caught:
        await live.start()
    assert "401" in str(caught.value) and "DEEPGRAM_API_KEY" in str(caught.value)
    assert "wrong-key-123" not in str(caught.value)
    await live.close()


def test_live_transcriber_is_per_call_for_deepgram_and_none_for_whisper() -> None:
    factory = live_transcriber(SttSettings(stt="deepgram", deepgram_api_key="k"))
    assert factory is not None
    a, b = factory(), factory()
    assert isinstance(a, DeepgramLive) and a is not b
    assert live_transcriber(SttSettings(stt="whisper", deepgram_api_key="k")) is None
    assert live_transcriber(SttSettings(stt="auto", deepgram_api_key=None)) is None
