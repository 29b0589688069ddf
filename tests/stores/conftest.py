from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from ivr_bridge.stores.redis_client import SharedRedis
from ivr_bridge.stores.redis_registry import RedisCallRegistry
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


@pytest.fixture
async def new_replica(
    redis_process: RedisProcess, shared_redis: list[SharedRedis]
) -> AsyncIterator[Callable[[], Awaitable[RedisCallRegistry]]]:
    """Makes a live-call registry as one replica holds it (listening); all closed at the end."""
    made: list[RedisCallRegistry] = []

    async def make() -> RedisCallRegistry:
        redis = SharedRedis(redis_process.url)
        shared_redis.append(redis)
        registry = RedisCallRegistry(redis)
        await registry.start()
        made.append(registry)
        return registry

    yield make
    for registry in made:
        await registry.close()
