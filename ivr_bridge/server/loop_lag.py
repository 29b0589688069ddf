"""Event-loop lag probe: how late the bridge's loop runs a callback that is due now.

Every inbound Twilio frame is handled by a callback on this one loop, so the delay a due timer
sees is the delay a frame sees before the bridge reads it. A 10 ms sleep is scheduled again and
again; ``actual - expected`` goes to ``ivr_event_loop_lag_seconds`` (the load test's "inbound
frame handling lag"). Costs one timer per 10 ms for the whole process, not per call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from ivr_bridge.server.state import STATE

PROBE_INTERVAL_S = 0.010


async def probe_loop_lag(
    observe: Callable[[float], None], interval_s: float = PROBE_INTERVAL_S
) -> None:
    """Run until cancelled, reporting each sample's lateness in seconds."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval_s
        await asyncio.sleep(interval_s)
        observe(max(0.0, loop.time() - due))


async def loop_lag_probe_ctx(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup context: the probe lives exactly as long as the application."""
    observe = app[STATE].metrics.event_loop_lag.observe
    task = asyncio.create_task(probe_loop_lag(observe), name="loop-lag-probe")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
