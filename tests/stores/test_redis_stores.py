"""The shared stores against a real Redis: what one replica writes, another acts on, once."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable

import pytest

from ivr_bridge.call.outcomes import CallOutcome
from ivr_bridge.call.registry import CallEvent, HangUpNow, MachineDetected, TransferNow
from ivr_bridge.errors import ConfigError
from ivr_bridge.stores.events import decode_event, encode_event
from ivr_bridge.stores.redis_client import SharedRedis
from ivr_bridge.stores.redis_outcomes import RedisOutcomeStore
from ivr_bridge.stores.redis_pace import RedisDialPacer
from ivr_bridge.stores.redis_registry import RedisCallRegistry
from tests.stores.redis_server import RedisProcess


class Call:
    def __init__(self) -> None:
        self.events: list[CallEvent] = []
        self.arrived = asyncio.Event()

    def on_event(self, event: CallEvent) -> None:
        self.events.append(event)
        self.arrived.set()


def sid() -> str:
    return "CA" + uuid.uuid4().hex


NewReplica = Callable[[], Awaitable[RedisCallRegistry]]


def test_events_cross_as_json_and_garbage_is_refused() -> None:
    for event in (
        HangUpNow("deploy", "Bye now."),
        TransferNow("+14155550100"),
        MachineDetected("human"),
    ):
        assert decode_event(encode_event("CA1", event)) == ("CA1", event)
    for raw in (
        "{}",
        "not json",
        '{"call_sid":"CA1","event":{"type":"reboot"}}',
        '{"call_sid":"CA1","event":{"type":"hangup","colour":"red"}}',
    ):
        with pytest.raises(ValueError, match="not a live-call event"):
            decode_event(raw)


async def test_an_outcome_recorded_on_one_replica_is_taken_once_on_another(
    redis_process: RedisProcess, shared_redis: list[SharedRedis]
) -> None:
    a = SharedRedis(redis_process.url)
    b = SharedRedis(redis_process.url)
    shared_redis += [a, b]
    here, there = RedisOutcomeStore(a), RedisOutcomeStore(b)
    call = sid()
    await here.record(call, CallOutcome("dial", number="+14155550100"))
    assert await here.outstanding() == 1
    assert await there.take(call) == CallOutcome("dial", number="+14155550100")
    assert await there.take(call) is None  # a retried request does not transfer twice
    assert await here.outstanding() == 0  # the draining replica sees it was collected
    assert await here.take(call) is None


async def test_an_event_posted_to_one_replica_reaches_the_call_on_another(
    redis_process: RedisProcess, new_replica: NewReplica
) -> None:
    a, b = await new_replica(), await new_replica()
    call, live = sid(), Call()
    await b.register(call, live)
    assert await a.deliver(call, TransferNow("+14155550100", "operator"))
    await asyncio.wait_for(live.arrived.wait(), 5)
    assert live.events == [TransferNow("+14155550100", "operator")]
    assert b.remote_events == 1
    assert not await a.deliver(sid(), HangUpNow())  # no such call anywhere: 404 for the poster
    await b.unregister(call, live)
    assert not await a.deliver(call, HangUpNow())  # ended calls are not live


async def test_a_verdict_that_beats_the_stream_is_held_and_delivered_once(
    redis_process: RedisProcess, new_replica: NewReplica
) -> None:
    a, b = await new_replica(), await new_replica()
    call, live = sid(), Call()
    assert not await a.deliver(call, MachineDetected("machine_end_beep"), hold_s=10)
    await b.register(call, live)
    assert live.events == [MachineDetected("machine_end_beep")]
    await b.unregister(call, live)
    again = Call()
    await b.register(call, again)  # held events went with the first registration
    assert again.events == []


async def test_a_killed_replica_stops_owning_its_calls(
    redis_process: RedisProcess, new_replica: NewReplica
) -> None:
    a, b = await new_replica(), await new_replica()
    call = sid()
    await b.register(call, Call())
    await b.close()  # stops listening without forgetting its calls, as a kill -9 would
    assert not await a.deliver(call, HangUpNow())  # nobody listens: not delivered, and ...
    owner = await a._redis.client.get(f"ivr:live:{call}")
    assert owner is None  # ... the stale owner key is gone


async def test_calls_go_on_without_redis_and_are_reachable_again_after_it_returns(
    redis_process: RedisProcess, new_replica: NewReplica
) -> None:
    a, b = await new_replica(), await new_replica()
    call, live = sid(), Call()
    await b.register(call, live)
    redis_process.stop()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert not await a.deliver(call, HangUpNow())  # bounded, not hung
    assert loop.time() - started < 5
    local, local_call = sid(), Call()
    await b.register(local, local_call)  # a call starting meanwhile still starts
    assert await b.deliver(local, HangUpNow("here"))  # and hears events posted on its replica
    store = RedisOutcomeStore(b._redis)
    await store.record(local, CallOutcome("hangup"))
    assert await store.take(local) == CallOutcome("hangup")  # kept on the replica itself
    redis_process.start()  # an empty Redis: every key is gone
    deadline = loop.time() + 20
    while not await a.deliver(call, TransferNow("+14155550100")):
        assert loop.time() < deadline, "the call was never announced again after Redis returned"
        await asyncio.sleep(0.2)
    await asyncio.wait_for(live.arrived.wait(), 5)
    assert live.events == [TransferNow("+14155550100")]


async def test_two_replicas_share_one_dial_pace(
    redis_process: RedisProcess, shared_redis: list[SharedRedis]
) -> None:
    class NoFallback:
        async def reserve_dial_slot(self, account: str, *, cps: float, now: float) -> float:
            raise AssertionError("Redis is up: the database must not pace")

    a, b = SharedRedis(redis_process.url), SharedRedis(redis_process.url)
    shared_redis += [a, b]
    pacers = [RedisDialPacer(a, NoFallback()), RedisDialPacer(b, NoFallback())]
    slots = [await pacers[i % 2].reserve_dial_slot("AC1", cps=2.0, now=1000.0) for i in range(6)]
    assert slots == [1000.0, 1000.5, 1001.0, 1001.5, 1002.0, 1002.5]
    assert await pacers[0].reserve_dial_slot("AC1", cps=2.0, now=2000.0) == 2000.0  # idle: now


async def test_a_bridge_told_to_share_state_does_not_start_without_redis() -> None:
    redis = SharedRedis("redis://127.0.0.1:1/0")
    with pytest.raises(
        ConfigError, match=re.escape("IVR_REDIS_URL=redis://127.0.0.1:1/0: Redis did not answer")
    ):
        await redis.wait_until_reachable(limit_s=0.5)
    await redis.close()
