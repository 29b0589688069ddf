"""Caller hang-ups give back everything the call held: speech sessions, sockets, tasks.

Every call opens a speech-session WebSocket; one left open is kept alive by keepalive pings
forever, with its file descriptor and tasks on both ends, until the process runs out of fds and
every new call fails. Bridge and speech server share this test's event loop, so the loop's task
count and the process's fd count cover both sides.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import pytest

from ivr_bridge.server.app import RunningBridge
from ivr_bridge.speechserver.app import SESSIONS_KEY
from tests.e2e.conftest import AUTH_TOKEN
from tests.e2e.scrape import metric
from tests.e2e.twilio_peer import hang_up_mid_prompt

CALLS = 12


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _settles(predicate: Callable[[], bool], limit_s: float = 15.0) -> bool:
    """Teardown is asynchronous (close handshakes): poll, with a generous real-time ceiling."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not predicate():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


@pytest.mark.parametrize("how", ["stop", "drop"])
async def test_caller_hang_ups_leave_no_speech_session_socket_or_task_behind(
    bridge: RunningBridge, speech_server: Any, how: str
) -> None:
    sessions: set[Any] = speech_server.runner.app[SESSIONS_KEY]
    # One warm-up call so lazily created, process-lifetime objects exist before the baseline.
    await hang_up_mid_prompt(bridge.base_url, AUTH_TOKEN, how=how)
    assert await _settles(lambda: not sessions and not bridge.state.active_calls)
    tasks_before, fds_before = len(asyncio.all_tasks()), _open_fds()

    await asyncio.gather(
        *(hang_up_mid_prompt(bridge.base_url, AUTH_TOKEN, how=how) for _ in range(CALLS))
    )

    assert await _settles(lambda: not bridge.state.active_calls), "calls still running"
    assert await _settles(lambda: not sessions), f"{len(sessions)} speech sessions left open"
    assert await _settles(lambda: len(asyncio.all_tasks()) <= tasks_before), (
        f"tasks: {tasks_before} before, {len(asyncio.all_tasks())} after {CALLS} hang-ups"
    )
    assert await _settles(lambda: _open_fds() <= fds_before), (
        f"fds: {fds_before} before, {_open_fds()} after {CALLS} hang-ups"
    )

    # What an operator watching /metrics sees: both ends agree nothing is left open.
    assert await metric(bridge.base_url, "ivr_speech_sessions_open", None) == 0
    assert await metric(speech_server.base_url, "speech_server_sessions_open", None) == 0
    assert await metric(bridge.base_url, "process_open_fds", None) > 0
    assert await metric(bridge.base_url, "ivr_asyncio_tasks", None) > 0
