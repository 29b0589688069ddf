from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sim_fakes import FakeBridge


@pytest.fixture
async def make_bridge() -> AsyncIterator[Callable[..., Any]]:
    started: list[FakeBridge] = []

    async def factory(*args: Any, **kwargs: Any) -> FakeBridge:
        bridge = FakeBridge(*args, **kwargs)
        await bridge.start()
        started.append(bridge)
        return bridge

    yield factory
    for bridge in started:
        await bridge.stop()
