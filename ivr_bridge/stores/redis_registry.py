"""Live calls across replicas: an event posted to any replica reaches the call wherever it runs.

Each replica listens on one channel of its own (``ivr:replica:<id>``) and announces its calls as
``ivr:live:<CallSid> = <id>`` with a short expiry that a heartbeat renews, so a replica that is
killed stops owning its calls within ``LIVE_TTL_S`` and one whose Redis restarted announces them
again within ``HEARTBEAT_S``. ``deliver`` looks the owner up and publishes to its channel in one
Lua script; an event for a call not live yet is held in ``ivr:held:<CallSid>`` in the same
script, and ``register`` takes what is held in another, so an answering-machine verdict that
beats the call's stream is neither lost nor delivered twice.

A call on this replica gets its events directly, without Redis. With Redis down, calls go on;
only events from other replicas wait (the poster hears 404, as for a call that is not live).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from typing import Any

import structlog
from redis.exceptions import RedisError

from ivr_bridge.call.registry import CallEvent, LiveCall
from ivr_bridge.errors import SharedStateError
from ivr_bridge.stores.events import decode_event, encode_event
from ivr_bridge.stores.redis_client import SharedRedis

log = structlog.get_logger(__name__)

LIVE_TTL_S = 30
HEARTBEAT_S = 10.0
HELD_MAX = 20
"""Events held for one call not live yet, at most."""

_DELIVER = """
local owner = redis.call('GET', KEYS[1])
if owner then
  return {owner, redis.call('PUBLISH', ARGV[1] .. owner, ARGV[2])}
end
local hold_ms = tonumber(ARGV[3])
if hold_ms > 0 then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
  redis.call('PEXPIRE', KEYS[2], hold_ms)
end
return false
"""

_REGISTER = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
local held = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[2])
return held
"""

_UNREGISTER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def replica_id() -> str:
    """Unique per process and readable in Redis: host, pid and a random tail."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _live(sid: str) -> str:
    return f"ivr:live:{sid}"


def _held(sid: str) -> str:
    return f"ivr:held:{sid}"


CHANNEL_PREFIX = "ivr:replica:"


class RedisCallRegistry:
    def __init__(self, redis: SharedRedis, replica: str | None = None) -> None:
        self.replica = replica or replica_id()
        self._redis = redis
        self._calls: dict[str, LiveCall] = {}
        client = redis.client
        self._deliver = client.register_script(_DELIVER)
        self._register = client.register_script(_REGISTER)
        self._unregister = client.register_script(_UNREGISTER)
        self._listening: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self.remote_events = 0
        """Events that reached a call here from another replica (tests and logs read it)."""

    def __len__(self) -> int:
        return len(self._calls)

    @property
    def channel(self) -> str:
        return CHANNEL_PREFIX + self.replica

    async def start(self, subscribed_within_s: float = 5.0) -> None:
        """Listen on this replica's channel (resubscribing after any loss) and keep its calls
        announced; returns once the first subscription is confirmed."""
        self._listening = asyncio.create_task(self._listen(), name="redis-registry-listen")
        self._heartbeat = asyncio.create_task(self._beat(), name="redis-registry-heartbeat")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), subscribed_within_s)

    async def close(self) -> None:
        for task in (self._listening, self._heartbeat):
            if task is not None:
                task.cancel()
        for task in (self._listening, self._heartbeat):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def register(self, call_sid: str, call: LiveCall) -> None:
        self._calls[call_sid] = call
        try:
            held = await self._redis.run(
                "announce call",
                lambda: self._register(
                    keys=[_live(call_sid), _held(call_sid)], args=[self.replica, LIVE_TTL_S]
                ),
            )
        except SharedStateError as exc:
            log.warning(
                "call not announced to other replicas yet", call_sid=call_sid, error=str(exc)
            )
            return
        for raw in held or ():
            self._hand_over(raw)

    async def unregister(self, call_sid: str, call: LiveCall) -> None:
        if self._calls.get(call_sid) is not call:
            return
        del self._calls[call_sid]
        with contextlib.suppress(SharedStateError):
            await self._redis.run(
                "forget call",
                lambda: self._unregister(keys=[_live(call_sid)], args=[self.replica]),
            )

    async def deliver(self, call_sid: str, event: CallEvent, *, hold_s: float = 0.0) -> bool:
        call = self._calls.get(call_sid)
        if call is not None:
            call.on_event(event)
            return True
        message = encode_event(call_sid, event)
        try:
            answer = await self._redis.run(
                "deliver event",
                lambda: self._deliver(
                    keys=[_live(call_sid), _held(call_sid)],
                    args=[CHANNEL_PREFIX, message, int(hold_s * 1000), HELD_MAX],
                ),
            )
        except SharedStateError as exc:
            log.warning(
                "cannot reach other replicas for an event", call_sid=call_sid, error=str(exc)
            )
            return False
        if not answer:
            return False
        owner, receivers = answer
        if int(receivers) == 0:  # its replica is gone (killed): the call is no more
            log.info("event for a call whose replica is gone", call_sid=call_sid, replica=owner)
            with contextlib.suppress(SharedStateError):
                await self._redis.run(
                    "forget dead call",
                    lambda: self._unregister(keys=[_live(call_sid)], args=[owner]),
                )
            return False
        return True

    def _hand_over(self, raw: Any) -> None:
        try:
            call_sid, event = decode_event(raw)
        except ValueError as exc:
            log.warning("dropped an unreadable live-call event", error=str(exc))
            return
        call = self._calls.get(call_sid)
        if call is None:
            log.info("event for a call that just ended here", call_sid=call_sid)
            return
        self.remote_events += 1
        try:
            call.on_event(event)
        except Exception:  # one call's fault must not stop this replica hearing events
            log.exception("a call failed to take an event from another replica", call_sid=call_sid)

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self._redis.subscriber.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                while True:
                    message = await pubsub.get_message(timeout=HEARTBEAT_S)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        backoff = 0.1
                        self._subscribed.set()
                        self._redis.succeeded()
                        await self._announce_all()
                    elif message["type"] == "message":
                        self._hand_over(message["data"])
            except (RedisError, OSError) as exc:
                self._subscribed.clear()
                self._redis.failed("listen for events", exc)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            await self._announce_all()

    async def _announce_all(self) -> None:
        """Renew (or, after Redis lost them, restore) every live call's owner key."""
        sids = list(self._calls)
        if not sids:
            return
        client = self._redis.client

        async def renew() -> None:
            pipe = client.pipeline(transaction=False)
            for sid in sids:
                pipe.set(_live(sid), self.replica, ex=LIVE_TTL_S)
            await pipe.execute()

        with contextlib.suppress(SharedStateError):
            await self._redis.run("renew live calls", renew)
