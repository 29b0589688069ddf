"""Speech-server numbers for the closing note (not collected by pytest: no ``test_`` prefix).

Run: ``.venv/bin/python tests/speechserver/bench_speechserver.py``. Measures synthesis speed
(seconds of audio per CPU second), time to first audio and reset acknowledgement time, through
the official lmnt SDK against a loopback server paced at real time.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from lmnt import AsyncLmnt

from ivr_bridge.speechserver.app import SpeechServerConfig, start_speech_server
from ivr_bridge.speechserver.synth import get_synthesizer

SENTENCES = [
    "Thank you for calling the billing department.",
    "Your current balance is forty two dollars and seventeen cents.",
    "Press one to pay now, or press two to speak with an agent.",
    "Please hold while I transfer your call to the next available representative.",
]
LONG_TEXT = " ".join(f"This is sentence {n} of a long announcement." for n in range(30))
RUNS = 20


async def synthesis_speed() -> float:
    synth = get_synthesizer()
    await synth.synthesize("warm up", "leah", 8000)
    audio_s = 0.0
    cpu_start = time.process_time()
    for _ in range(10):
        for sentence in SENTENCES:
            audio_s += (await synth.synthesize(sentence, "leah", 8000)).duration_s
    return audio_s / (time.process_time() - cpu_start)


async def first_audio_ms(client: AsyncLmnt) -> float:
    session = await client.speech.sessions.create(voice="leah", format="ulaw", sample_rate=8000)
    started = time.perf_counter()
    await session.send_text(SENTENCES[1])
    await session.send_flush()
    async for message in session:
        if message.type == "audio":
            elapsed = (time.perf_counter() - started) * 1000
            break
    await session.close()
    return elapsed


async def reset_ack_ms(client: AsyncLmnt) -> float:
    session = await client.speech.sessions.create(voice="leah", format="ulaw", sample_rate=8000)
    await session.send_text(LONG_TEXT)
    await session.send_flush()
    async for message in session:
        if message.type == "audio":
            break
    await asyncio.sleep(0.3)  # mid-utterance, audio in flight
    started = time.perf_counter()
    await session.send_reset()
    async for message in session:
        if message.type == "reset_complete":
            elapsed = (time.perf_counter() - started) * 1000
            break
    await session.close()
    return elapsed


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"median {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms, max {ordered[-1]:.1f} ms"


async def main() -> None:
    print(f"synthesis speed: {await synthesis_speed():.0f} s of audio per CPU second (8 kHz)")
    server = await start_speech_server(SpeechServerConfig(realtime_factor=1.0))
    try:
        async with AsyncLmnt(api_key="bench", base_url=server.base_url) as client:
            ttfa = [await first_audio_ms(client) for _ in range(RUNS)]
            print(f"time to first audio (no injected delay, RTF 1.0): {summary(ttfa)}")
            acks = [await reset_ack_ms(client) for _ in range(RUNS)]
            print(f"reset acknowledgement (audio in flight, RTF 1.0): {summary(acks)}")
            burst = await asyncio.gather(*(first_audio_ms(client) for _ in range(50)))
            print(f"time to first audio, 50 sessions starting at once: {summary(list(burst))}")
            server.config.first_audio_delay_ms = 150
            delayed = [await first_audio_ms(client) for _ in range(5)]
            print(f"time to first audio with first_audio_delay_ms=150: {summary(delayed)}")
    finally:
        await server.stop()


if __name__ == "__main__":
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    asyncio.run(main())
