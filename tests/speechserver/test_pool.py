"""Synthesis in worker processes: the same audio as in-process, on several cores, self-mending.

No timing assertions: which worker served a request is recorded by the pool itself (the pid that
ran it), so "both cores worked" is a fact, not a stopwatch reading on a loaded machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from ivr_bridge.speechserver.app import POOL_KEY, SpeechServerConfig, start_speech_server
from ivr_bridge.speechserver.pool import SynthesisPool
from ivr_bridge.speechserver.synth import SynthesisError, get_synthesizer
from tests.speechserver.speech_test_helpers import TEST_KEY, raw_session

pytestmark = pytest.mark.timeout(120)

LONG = " ".join(
    ["Thank you for calling. Your appointment is on Tuesday at ten thirty in the morning."] * 12
)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool() -> AsyncIterator[SynthesisPool]:
    synthesis = SynthesisPool(2)
    await synthesis.start()
    yield synthesis
    await asyncio.to_thread(synthesis.shutdown)


@pytest.mark.asyncio(loop_scope="module")
async def test_a_worker_speaks_as_this_process_would(pool: SynthesisPool) -> None:
    # The process-wide synthesizer: espeak's state is global, one owner per process.
    expected = await get_synthesizer().synthesize("Press one for billing.", "leah", 8000)
    got = await pool.synthesize("Press one for billing.", "leah", 8000)
    # espeak's breath noise depends on what the process said before, so the samples differ;
    # the speech itself (its length, its words) does not.
    assert len(got.pcm16) == len(expected.pcm16)
    assert [w.text for w in got.words] == [w.text for w in expected.words]
    for ours, theirs in zip(got.words, expected.words, strict=True):
        assert abs(ours.start_s - theirs.start_s) < 0.05


@pytest.mark.asyncio(loop_scope="module")
async def test_prompts_started_together_are_spread_over_the_workers(pool: SynthesisPool) -> None:
    before = dict(pool.served_by)
    results = await asyncio.gather(*(pool.synthesize(LONG, "leah", 8000) for _ in range(8)))
    assert all(r.duration_s > 30 for r in results)
    served = {pid: n - before.get(pid, 0) for pid, n in pool.served_by.items()}
    assert sorted(pid for pid, n in served.items() if n > 0) == sorted(pool.worker_pids())
    assert sum(served.values()) == 8


@pytest.mark.asyncio(loop_scope="module")
async def test_a_cancelled_request_frees_its_caller_at_once(pool: SynthesisPool) -> None:
    task = asyncio.create_task(pool.synthesize(LONG, "leah", 8000))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    after = await pool.synthesize("Goodbye.", "leah", 8000)
    assert [w.text for w in after.words] == ["Goodbye"]


async def test_a_killed_worker_is_replaced_and_the_request_still_served() -> None:
    synthesis = SynthesisPool(2)
    try:
        pids = await synthesis.start()
        os.kill(pids[0], signal.SIGKILL)
        # The executor learns of the death on its own thread: a request sent before then is
        # served by the live worker, one sent after finds the pool broken and gets it replaced.
        # Every request must be served either way; within 10 s the pool must have been renewed.
        deadline = time.monotonic() + 10.0
        served = 0
        while synthesis.restarts == 0 and time.monotonic() < deadline:
            result = await synthesis.synthesize("Still here.", "leah", 8000)
            assert result.duration_s > 0.3
            served += 1
        assert served >= 1
        assert synthesis.restarts == 1
        assert pids[0] not in synthesis.worker_pids()
    finally:
        await asyncio.to_thread(synthesis.shutdown)


async def test_shutdown_leaves_no_worker_behind() -> None:
    synthesis = SynthesisPool(2)
    pids = await synthesis.start()
    assert len(pids) == 2 and all(alive(p) for p in pids)
    await asyncio.to_thread(synthesis.shutdown)
    assert not any(alive(p) for p in pids)


async def test_a_server_with_a_pool_speaks_a_session_and_stops_its_workers() -> None:
    config = SpeechServerConfig(processes=2, api_keys=[TEST_KEY])
    server = await start_speech_server(config)
    try:
        pids = server.runner.app[POOL_KEY].worker_pids()
        assert len(pids) == 2
        ws = await raw_session(server, format="ulaw", sample_rate=8000)
        await ws.send(json.dumps({"type": "text", "text": "Hello from a worker process."}))
        await ws.send(json.dumps({"type": "flush", "nonce": 1}))
        audio = b""
        while len(audio) < 4000:
            frame = await asyncio.wait_for(ws.recv(), 30)
            if isinstance(frame, bytes):
                audio += frame
        await ws.close()
    finally:
        await server.stop()
    assert not any(alive(p) for p in pids)


async def test_a_pool_of_none_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one process"):
        SynthesisPool(0)
    with pytest.raises(SynthesisError, match="longer than"):
        await SynthesisPool(1).synthesize("x" * 6000, "leah", 8000)
