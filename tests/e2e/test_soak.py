"""Soak: 300 calls, half of them hung up by the caller mid-prompt, and everything they held is
given back: file descriptors, asyncio tasks, speech sessions on both ends, as /metrics shows.

Bridge and speech server share this process, so its fds and tasks cover both sides. Calls run
30 at a time; the bridge-ended half plays the whole greeting (marks echoed at once)."""

from __future__ import annotations

import asyncio
from typing import Any

from ivr_bridge.server.app import RunningBridge
from tests.e2e.conftest import AUTH_TOKEN
from tests.e2e.scrape import metrics
from tests.e2e.twilio_peer import hang_up_mid_prompt, new_call_sid, run_session

CALLS = 300
AT_ONCE = 30


async def _gauges(url: str, *names: str) -> dict[str, float]:
    samples = await metrics(url)
    missing = set(names) - set(samples)
    assert not missing, f"missing from {url}/metrics: {missing}"
    return {name: samples[name] for name in names}


async def _settled(
    bridge: RunningBridge, speech_url: str, baseline: dict | None = None, limit_s: float = 20.0
) -> dict:
    """The gauges once calls, sessions (and, given a baseline, fds and tasks) have wound down:
    teardown is asynchronous; a leak never winds down, so waiting cannot hide one."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        values = {
            **await _gauges(
                bridge.base_url,
                "process_open_fds",
                "ivr_asyncio_tasks",
                "ivr_speech_sessions_open",
                "ivr_active_calls",
            ),
            **await _gauges(speech_url, "speech_server_sessions_open"),
        }
        idle = not values["ivr_active_calls"] and not values["speech_server_sessions_open"]
        if baseline is not None:
            idle = idle and all(
                values[k] <= baseline[k] for k in ("process_open_fds", "ivr_asyncio_tasks")
            )
        if idle or loop.time() > deadline:
            return values
        await asyncio.sleep(0.1)


async def _one(bridge: RunningBridge, n: int) -> None:
    if n % 2:
        await hang_up_mid_prompt(bridge.base_url, AUTH_TOKEN)
    else:
        session = await run_session(bridge.base_url, AUTH_TOKEN, call_sid=new_call_sid())
        assert session.closed_by_server and len(session.audio) > 8000


async def test_three_hundred_calls_half_hung_up_give_back_every_resource(
    bridge: RunningBridge, speech_server: Any
) -> None:
    await _one(bridge, 0)  # warm up: lazily built, process-lifetime objects exist before
    await _one(bridge, 1)
    before = await _settled(bridge, speech_server.base_url)
    for batch in range(0, CALLS, AT_ONCE):
        await asyncio.gather(*(_one(bridge, n) for n in range(batch, batch + AT_ONCE)))
    after = await _settled(bridge, speech_server.base_url, before)
    assert after["ivr_speech_sessions_open"] == 0, after
    assert after["speech_server_sessions_open"] == 0, after
    assert after["ivr_active_calls"] == 0, after
    assert after["process_open_fds"] <= before["process_open_fds"], (before, after)
    assert after["ivr_asyncio_tasks"] <= before["ivr_asyncio_tasks"], (before, after)
