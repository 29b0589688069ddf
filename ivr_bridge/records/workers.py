"""Stopping a queue's worker tasks without losing what they hold, within a bound.

The record keeper and the webhook each feed a bounded queue to worker tasks. At shutdown both
want the same: let the workers finish what is queued *and* what they are holding right now
(``Queue.join`` counts both), but never wait past a deadline, then cancel them.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def drain_and_stop(
    queue: asyncio.Queue[Any], tasks: list[asyncio.Task[None]], timeout_s: float
) -> None:
    """Wait (at most ``timeout_s``) until every queued item is done, then cancel ``tasks``."""
    if tasks:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await queue.join()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    tasks.clear()
