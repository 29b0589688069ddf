"""The account's dial pace in Redis: every dispatcher on every replica shares one bucket.

The campaign database already paces dispatchers that share it (one row under a lock); with Redis
configured the same bucket (the next free instant for the account, a burst of one) lives in one
Lua script instead, off the database's hot path. A Redis that cannot answer hands the reservation
to the database's own pacer: calls go on, paced there (for as long as Redis is away, replicas
that still reach it keep a second bucket, so the account may see up to twice the rate; Twilio
queues what is over its CPS rather than failing it).
"""

from __future__ import annotations

import structlog

from ivr_bridge.campaign.dispatcher import DialPacer
from ivr_bridge.errors import SharedStateError
from ivr_bridge.stores.redis_client import SharedRedis

log = structlog.get_logger(__name__)

_RESERVE = """
local now = tonumber(ARGV[1])
local gap = tonumber(ARGV[2])
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(nxt, now)
redis.call('SET', KEYS[1], string.format('%.6f', slot + gap), 'EX', 3600)
return string.format('%.6f', slot)
"""


class RedisDialPacer:
    def __init__(self, redis: SharedRedis, fallback: DialPacer) -> None:
        self._redis = redis
        self._fallback = fallback
        self._reserve = redis.client.register_script(_RESERVE)

    async def reserve_dial_slot(self, account: str, *, cps: float, now: float) -> float:
        try:
            slot = await self._redis.run(
                "reserve dial slot",
                lambda: self._reserve(keys=[f"ivr:pace:{account}"], args=[now, 1.0 / cps]),
            )
        except SharedStateError as exc:
            log.warning("dial paced by the database while Redis is away", error=str(exc))
            return await self._fallback.reserve_dial_slot(account, cps=cps, now=now)
        return float(slot)
