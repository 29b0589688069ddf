"""What this replica shares with the others: in memory (one replica) or Redis (several).

``IVR_REDIS_URL`` unset: outcomes and live calls stay in this process, as a single bridge needs.
Set: a starting bridge waits (briefly) for Redis and refuses to start without it, with a message
that names the setting; once running, Redis going away costs reach between replicas, never a
call (``ivr_bridge.stores``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ivr_bridge.call.outcomes import MemoryOutcomeStore, OutcomeStore
from ivr_bridge.call.registry import CallRegistry, MemoryCallRegistry
from ivr_bridge.campaign.dispatcher import DialPacer
from ivr_bridge.config import Settings
from ivr_bridge.errors import SharedStateError
from ivr_bridge.metrics import BridgeMetrics
from ivr_bridge.stores.redis_client import SharedRedis
from ivr_bridge.stores.redis_outcomes import RedisOutcomeStore
from ivr_bridge.stores.redis_pace import RedisDialPacer
from ivr_bridge.stores.redis_registry import RedisCallRegistry, replica_id


@dataclass
class SharedState:
    outcomes: OutcomeStore
    calls: CallRegistry
    replica: str
    """This process's name among the replicas (host-pid-random)."""
    redis: SharedRedis | None = None
    registry: RedisCallRegistry | None = None

    def pacer(self, fallback: DialPacer) -> DialPacer:
        """Who spaces this replica's dials: Redis when shared, else the campaign database."""
        return fallback if self.redis is None else RedisDialPacer(self.redis, fallback)

    async def first_start(self, call_sid: str, within_s: float) -> bool:
        """False when another replica already started a stream for this call in the last
        ``within_s`` (a replayed ``start``; each replica refuses its own replays itself)."""
        if self.redis is None:
            return True
        client = self.redis.client
        try:
            fresh = await self.redis.run(
                "claim stream start",
                lambda: client.set(
                    f"ivr:started:{call_sid}", self.replica, nx=True, ex=max(1, int(within_s))
                ),
            )
        except SharedStateError:
            return True  # this replica's own check passed; Redis cannot say more now
        return bool(fresh)

    async def close(self) -> None:
        if self.registry is not None:
            await self.registry.close()
        if self.redis is not None:
            await self.redis.close()


async def open_shared_state(settings: Settings, metrics: BridgeMetrics) -> SharedState:
    replica = replica_id()
    if settings.redis_url is None:
        return SharedState(
            MemoryOutcomeStore(ttl_s=settings.outcome_ttl_s), MemoryCallRegistry(), replica
        )
    redis = SharedRedis(settings.redis_url, on_change=metrics.shared_state_up.set)
    try:
        await redis.wait_until_reachable()
        registry = RedisCallRegistry(redis, replica)
        await registry.start()
    except BaseException:
        await redis.close()
        raise
    metrics.shared_state_up.set(1)
    outcomes = RedisOutcomeStore(redis, ttl_s=settings.outcome_ttl_s)
    return SharedState(outcomes, registry, replica, redis, registry)
