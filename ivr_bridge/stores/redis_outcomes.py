"""Call outcomes in Redis: the replica that ran the stream records, any replica answers Twilio.

Each outcome is also kept in this process's memory: when Redis cannot take it, the after-stream
request still finds it if it comes back here, and a replica that asks Redis in vain answers
Twilio with a polite goodbye (``twilio_webhooks``), never a 500. ``take`` is ``GETDEL``, so two
replicas answering the same request twice (a Twilio retry) act on it once.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict

import structlog

from ivr_bridge.call.outcomes import CallOutcome, MemoryOutcomeStore
from ivr_bridge.errors import SharedStateError
from ivr_bridge.stores.redis_client import SharedRedis

log = structlog.get_logger(__name__)

KEY = "ivr:outcome:{}"
OWN_MAX = 100_000


def _encode(outcome: CallOutcome) -> str:
    return json.dumps(
        {
            "action": outcome.action,
            "number": outcome.number,
            "message": outcome.message,
            "say_voice": outcome.say_voice,
            "say_language": outcome.say_language,
        },
        separators=(",", ":"),
    )


def _decode(raw: str | bytes) -> CallOutcome:
    body = json.loads(raw)
    return CallOutcome(
        action=body["action"],
        number=body.get("number"),
        message=body.get("message"),
        say_voice=body.get("say_voice"),
        say_language=body.get("say_language"),
    )


class RedisOutcomeStore:
    def __init__(self, redis: SharedRedis, ttl_s: float = 600.0) -> None:
        self._redis = redis
        self._ttl_ms = int(ttl_s * 1000)
        self._local = MemoryOutcomeStore(ttl_s=ttl_s)
        self._own: OrderedDict[str, float] = OrderedDict()
        """Outcomes this process recorded, by when (what its drain waits to see collected)."""

    async def record(self, call_sid: str, outcome: CallOutcome) -> None:
        await self._local.record(call_sid, outcome)
        self._own[call_sid] = time.monotonic()
        self._own.move_to_end(call_sid)
        while len(self._own) > OWN_MAX:
            self._own.popitem(last=False)
        client = self._redis.client
        try:
            await self._redis.run(
                "record outcome",
                lambda: client.set(KEY.format(call_sid), _encode(outcome), px=self._ttl_ms),
            )
        except SharedStateError as exc:
            log.error(
                "call outcome kept on this replica only: another replica answering Twilio's "
                "after-stream request will say goodbye and hang up",
                call_sid=call_sid,
                action=outcome.action,
                error=str(exc),
            )

    async def take(self, call_sid: str) -> CallOutcome | None:
        local = await self._local.take(call_sid)
        self._own.pop(call_sid, None)
        client = self._redis.client
        try:
            raw = await self._redis.run("take outcome", lambda: client.getdel(KEY.format(call_sid)))
        except SharedStateError as exc:
            if local is None:
                log.error("cannot read the call's outcome", call_sid=call_sid, error=str(exc))
            return local
        if raw is None:
            return local
        try:
            return _decode(raw)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("unreadable call outcome in Redis", call_sid=call_sid, error=repr(exc))
            return local

    async def outstanding(self, recent_s: float = 60.0) -> int:
        """Outcomes this process recorded in the last ``recent_s`` that no replica has handed
        to Twilio yet."""
        since = time.monotonic() - recent_s
        sids = [sid for sid, at in self._own.items() if at >= since]
        if not sids:
            return 0
        client = self._redis.client

        async def exist() -> list[int]:
            pipe = client.pipeline(transaction=False)
            for sid in sids:
                pipe.exists(KEY.format(sid))
            return list(await pipe.execute())

        try:
            found = await self._redis.run("count outcomes", exist)
        except SharedStateError:
            return await self._local.outstanding(recent_s)
        for sid, there in zip(sids, found, strict=True):
            if not there:  # another replica answered Twilio: forget it here too
                self._own.pop(sid, None)
                await self._local.take(sid)
        return sum(1 for there in found if there)
