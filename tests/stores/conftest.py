from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ivr_bridge.stores.redis_client import SharedRedis
from tests.stores.redis_server import RedisProcess


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def shared_redis(redis_process: RedisProcess) -> AsyncIterator[list[SharedRedis]]:
    """Clients to the private server: one per simulated replica, closed at the end."""
    clients: list[SharedRedis] = []
    yield clients
    for client in clients:
        await client.close()
