"""Run a simulated call again, slower, until its timing can be judged.

A run faster than real time is only as trustworthy as the machine is idle: when a timing limit is
missed by less than the caller's clock can vouch for, the result is *inconclusive*
(``ivr_bridge.sim.scenario.result``). Running again at a lower speed shrinks that slack (real time
is multiplied by the speed) until the run passes, fails for real, or reaches real time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from ivr_bridge.sim.scenario.result import CallResult

log = structlog.get_logger(__name__)

SLOWDOWN = 4.0


async def until_conclusive(
    run: Callable[[float], Awaitable[CallResult]], speed: float, *, attempts: int = 3
) -> CallResult:
    """``run(speed)``; while inconclusive, again at a quarter of the speed (never below 1)."""
    result = await run(speed)
    for _ in range(attempts - 1):
        if not result.inconclusive or speed <= 1.0:
            break
        log.warning(
            "simulated call inconclusive; running it again slower",
            speed=speed,
            caller_lag_ms=round(result.lag_ms),
        )
        speed = max(1.0, speed / SLOWDOWN)
        result = await run(speed)
    return result
