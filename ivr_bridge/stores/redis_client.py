"""One Redis client for the shared stores, every operation bounded and failures remembered.

A call must never wait on a Redis that is gone: each operation has a short deadline, and after a
failure the stores skip Redis for ``COOL_OFF_S`` (answering from this process's own memory)
instead of paying that deadline again on every call's start. Whether Redis is up is visible to
the stores (``available``), to the logs (one line per change, not per operation) and to metrics.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from ivr_bridge.errors import ConfigError, SharedStateError

log = structlog.get_logger(__name__)

T = TypeVar("T")

OP_TIMEOUT_S = 0.5
"""Longest any one Redis operation may take (they take well under a millisecond on a LAN)."""
COOL_OFF_S = 1.0
"""After a failure, how long the stores go without Redis before trying it again."""
STARTUP_WAIT_S = 10.0
"""How long a starting bridge waits for Redis before refusing to start."""


class SharedRedis:
    def __init__(
        self,
        url: str,
        *,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=OP_TIMEOUT_S * 2,
            socket_connect_timeout=OP_TIMEOUT_S * 2,
            health_check_interval=10,
            decode_responses=True,
        )
        self.subscriber: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=OP_TIMEOUT_S * 2,
            socket_keepalive=True,
            health_check_interval=5,
            decode_responses=True,
        )
        """For pub/sub: its reads wait for messages, so no socket timeout (a health check
        instead)."""
        self._clock = clock
        self._skip_until = 0.0
        self._up = True
        self._on_change = on_change

    @property
    def available(self) -> bool:
        """False while cooling off after a failure (operations fail at once meanwhile)."""
        return self._clock() >= self._skip_until

    async def run(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        """``op()`` against Redis within ``OP_TIMEOUT_S``; SharedStateError if it cannot be."""
        if not self.available:
            raise SharedStateError(f"{what}: Redis unavailable (cooling off after a failure)")
        try:
            result = await asyncio.wait_for(op(), OP_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError) as exc:
            self.failed(what, exc)
            raise SharedStateError(f"{what}: {type(exc).__name__}: {exc}") from exc
        self.succeeded()
        return result

    def failed(self, what: str, exc: BaseException) -> None:
        self._skip_until = self._clock() + COOL_OFF_S
        if self._up:
            self._up = False
            log.error(
                "shared state unreachable: calls go on, each on its own replica; events from "
                "other replicas and outcomes for them wait until Redis is back",
                redis=_safe(self.url),
                during=what,
                error=f"{type(exc).__name__}: {exc}",
            )
            if self._on_change is not None:
                self._on_change(False)

    def succeeded(self) -> None:
        self._skip_until = 0.0
        if not self._up:
            self._up = True
            log.warning("shared state reachable again", redis=_safe(self.url))
            if self._on_change is not None:
                self._on_change(True)

    async def wait_until_reachable(self, limit_s: float = STARTUP_WAIT_S) -> None:
        """At startup: a bridge told to share state must not start without it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        while True:
            try:
                await asyncio.wait_for(self.client.ping(), OP_TIMEOUT_S * 2)
                return
            except (RedisError, OSError, TimeoutError) as exc:
                if loop.time() >= deadline:
                    raise ConfigError(
                        f"IVR_REDIS_URL={_safe(self.url)}: Redis did not answer within "
                        f"{limit_s:.0f} s ({type(exc).__name__}: {exc}); start Redis, fix the "
                        "URL, or unset IVR_REDIS_URL to keep state in this process (one replica)"
                    ) from None
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        await self.client.aclose()
        await self.subscriber.aclose()


def _safe(url: str) -> str:
    """The URL without its password (never logged)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (
        f":{parts.port}" if parts.port else ""
    )
    return urlunsplit(parts._replace(netloc=netloc))


__all__ = ["COOL_OFF_S", "OP_TIMEOUT_S", "SharedRedis", "SharedStateError"]
