"""Speech-server benchmark (not a test): time to first audio when many prompts start at once.

Starts the embedded LMNT-compatible server with synthesis in threads (``--processes 0``, the
old way) and then in a pool of worker processes, opens ``--sessions`` sessions (1.1, µ-law
8 kHz), waits until every one is ready, then sends each a prompt at the same instant and times
text → first audio frame per session on one clock. Reports p50 / p95 / max for each mode.

    .venv/bin/python benchmarks/bench_speech_pool.py --sessions 50 --processes 0 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import time

import structlog
import websockets

from ivr_bridge.speechserver.app import SpeechServerConfig, start_speech_server
from ivr_bridge.speechserver.engines import get_neural_synthesizer
from ivr_bridge.speechserver.synth import get_synthesizer

KEY = "bench-key"
PROMPT = (
    "Thanks for calling Example Bank. For your balance, press one or say balance. "
    "To speak to a person, press zero or say agent."
)


async def _session(url: str, voice: str, go: asyncio.Event) -> float:
    async with websockets.connect(url, max_size=None) as ws:
        init = {"X-API-Key": KEY, "lmnt-version": "1.1", "voice": voice, "format": "ulaw"}
        await ws.send(json.dumps({**init, "sample_rate": 8000}))
        while json.loads(await ws.recv()).get("type") != "ready":
            pass
        await go.wait()
        sent = time.perf_counter()
        await ws.send(json.dumps({"type": "text", "text": PROMPT}))
        await ws.send(json.dumps({"type": "flush", "nonce": 1}))
        while not isinstance(await ws.recv(), bytes):
            pass
        return (time.perf_counter() - sent) * 1000


async def measure(sessions: int, processes: int, voice: str) -> list[float]:
    config = SpeechServerConfig(api_keys=[KEY], processes=processes, warm_neural=True)
    if processes == 0:  # threads: load the engines here first, as the pool's workers do
        get_synthesizer().prepare()
        get_neural_synthesizer().prepare()
    server = await start_speech_server(config)
    try:
        url = server.base_url.replace("http://", "ws://") + "/v1/ai/speech/stream"
        go = asyncio.Event()
        tasks = [asyncio.create_task(_session(url, voice, go)) for _ in range(sessions)]
        await asyncio.sleep(1.0)  # every session opened and ready
        go.set()
        return sorted(await asyncio.gather(*tasks))
    finally:
        await server.stop()


def _p(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--processes", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--voice", default="leah", help="leah (espeak-ng) or heart (neural)")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    print(f"{args.sessions} prompts at once, voice {args.voice}: text → first audio (ms)")
    for processes in args.processes:
        took = await measure(args.sessions, processes, args.voice)
        mode = "threads" if processes == 0 else f"{processes} processes"
        print(
            f"  {mode:12s} p50 {statistics.median(took):6.0f}  p95 {_p(took, 0.95):6.0f}  "
            f"max {took[-1]:6.0f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
