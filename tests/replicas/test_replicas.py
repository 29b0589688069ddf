"""Three replicas behind nginx share one service: no call depends on which replica it reaches.

Each call's voice webhook, media stream and after-stream request land on different replicas
(round robin); a control request posted to one replica reaches the call on another; Redis
restarting mid-call loses no call; a replica killed mid-call ends only its own calls, which are
told goodbye by a replica that is still up. Real processes throughout: ``ivr-bridge serve`` ×3,
the speech server, nginx, redis-server, and the simulated Twilio caller.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from ivr_bridge.server.twilio_webhooks import LOST_CALL
from ivr_bridge.sim import CallResult, parse_script, run_call
from ivr_bridge.telephony.twilio.signature import sign_request, websocket_url
from tests.e2e.twilio_peer import connected, start
from tests.replicas.cluster import AUTH_TOKEN, CONTROL_TOKEN, SUPPORT_NUMBER, Cluster, Replica
from tests.stores.redis_server import RedisProcess

pytestmark = pytest.mark.timeout(300)

SPEED = 4.0

PRESS = """
steps:
  - wait_for_bot
  - press: "{key}"
  - silence: 8000
expect: {{{expect}}}
"""
HOLD = """
steps:
  - silence: 200000
expect: {{{expect}}}
"""
"""A caller who listens to the menu, silent, until someone ends the call from outside."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir: Path = tmp_path_factory.mktemp("cluster")
    cluster = Cluster(workdir, RedisProcess(workdir))
    try:
        cluster.start(replicas=3)
        yield cluster
    finally:
        cluster.stop()


def new_sid() -> str:
    return "CA" + uuid.uuid4().hex


async def place(cluster: Cluster, script: str, call_sid: str) -> CallResult:
    return await run_call(
        voice_url=cluster.url + "/twilio/voice",
        ws_url=None,
        script=parse_script(script, "replica-test.yaml"),
        auth_token=AUTH_TOKEN,
        speed=SPEED,
        call_sid=call_sid,
    )


async def stream_owner(cluster: Cluster, call_sid: str, limit_s: float = 30.0) -> Replica:
    """The replica whose log shows the call's stream starting (polled: logs are files)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while (owner := cluster.replica_of("stream started", call_sid)) is None:
        assert loop.time() < deadline, f"no replica started a stream for {call_sid}"
        await asyncio.sleep(0.1)
    return owner


async def post_transfer(replica: Replica, call_sid: str, to: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{replica.url}/calls/{call_sid}/control",
            json={"action": "transfer", "to": to},
            headers={"Authorization": f"Bearer {CONTROL_TOKEN}"},
        ) as resp,
    ):
        return resp.status


def routes(cluster: Cluster, call_sid: str) -> tuple[str | None, ...]:
    """Which replica answered the webhook, carried the stream, answered the after-stream."""
    hops = ("answering call", "stream started", "after-stream")
    return tuple((r.name if (r := cluster.replica_of(hop, call_sid)) else None) for hop in hops)


async def test_each_request_of_a_call_lands_on_another_replica_and_the_call_ends_right(
    cluster: Cluster,
) -> None:
    cluster.skip_to_replica(0)
    hangup, transfer = new_sid(), new_sid()
    result = await place(cluster, PRESS.format(key="*", expect="ended: hangup"), hangup)
    assert result.passed, result.summary_table()
    result = await place(
        cluster, PRESS.format(key="0", expect=f"dial: '{SUPPORT_NUMBER}'"), transfer
    )
    assert result.passed, result.summary_table()
    for call_sid in (hangup, transfer):
        webhook, stream, after = routes(cluster, call_sid)
        assert None not in (webhook, stream, after), (call_sid, webhook, stream, after)
        assert len({webhook, stream, after}) == 3, (webhook, stream, after)


async def test_a_control_request_to_one_replica_reaches_the_call_on_another(
    cluster: Cluster,
) -> None:
    call_sid = new_sid()
    call = asyncio.create_task(place(cluster, HOLD.format(expect="dial: '+14155550123'"), call_sid))
    owner = await stream_owner(cluster, call_sid)
    other = next(r for r in cluster.replicas if r is not owner)
    assert await post_transfer(other, call_sid, "+14155550123") == 202
    result = await asyncio.wait_for(call, 60)
    assert result.passed, result.summary_table()
    assert other.saw("control event delivered", call_sid)
    assert not owner.saw("control event delivered", call_sid)  # it came through Redis


async def test_restarting_redis_mid_call_loses_no_call(cluster: Cluster) -> None:
    numbers = ["+14155550101", "+14155550102", "+14155550103"]
    sids = [new_sid() for _ in numbers]
    calls, owners = [], []
    for call_sid, number in zip(sids, numbers, strict=True):
        script = HOLD.format(expect=f"dial: '{number}'")
        calls.append(asyncio.create_task(place(cluster, script, call_sid)))
        owners.append(await stream_owner(cluster, call_sid))
    await asyncio.to_thread(cluster.redis.restart)  # every key gone, every connection cut
    loop = asyncio.get_running_loop()
    for call_sid, number, owner in zip(sids, numbers, owners, strict=True):
        # The owner announces its calls again once it is back on Redis; until then the poster
        # hears 404 (no live call known), never an error.
        poster = next(r for r in cluster.replicas if r is not owner)
        deadline = loop.time() + 30
        while (status := await post_transfer(poster, call_sid, number)) != 202:
            assert status == 404, status
            assert loop.time() < deadline, "the call was never reachable again after Redis"
            await asyncio.sleep(0.2)
    results = await asyncio.wait_for(asyncio.gather(*calls), 90)
    for result in results:
        assert result.passed, result.summary_table()


async def test_a_killed_replica_ends_only_its_own_calls(cluster: Cluster) -> None:
    sids = [new_sid() for _ in range(3)]
    calls, owners = [], []
    for call_sid in sids:
        calls.append(
            asyncio.create_task(place(cluster, HOLD.format(expect="ended: hangup"), call_sid))
        )
        owners.append(await stream_owner(cluster, call_sid))
    victim = owners[0]
    survivors = [(s, c) for s, c, o in zip(sids, calls, owners, strict=True) if o is not victim]
    assert survivors, "every call landed on one replica: round robin did not spread them"
    cluster.kill(victim)
    killed = await asyncio.wait_for(calls[0], 60)
    # Its stream broke; Twilio asks what next, a replica still up answers: a goodbye, not silence.
    assert killed.verdict.kind == "hangup" and killed.verdict.said == [LOST_CALL], killed.verdict
    for call_sid, call in survivors:
        assert not call.done(), "a call on another replica ended with the killed one"
        live = next(r for r in cluster.replicas if r is not victim)
        assert await post_transfer(live, call_sid, "+14155550199") == 202
        result = await asyncio.wait_for(call, 60)
        assert result.verdict.kind == "dial" and result.verdict.target == "+14155550199"


async def test_a_start_replayed_to_another_replica_is_refused(cluster: Cluster) -> None:
    """A captured ``start`` (valid token, valid upgrade signature) sent again to a replica that
    has not seen it: Redis remembers the first, so the copy is closed as not a call."""
    call_sid = new_sid()
    live = [r for r in cluster.replicas if r.process is not None and r.process.poll() is None]
    first, second = live[0], live[1]  # (a replica killed by another test is left out)
    frame = start({"flow": "welcome.yaml"}, call_sid=call_sid, auth_token=AUTH_TOKEN)
    # Signed for the public URL, as Twilio signs it: nginx's address, not the replica's.
    public = websocket_url(cluster.url, "/twilio/media")
    headers = {"X-Twilio-Signature": sign_request(AUTH_TOKEN, public)}
    async with aiohttp.ClientSession() as http:
        original = await http.ws_connect(websocket_url(first.url, "/twilio/media"), headers=headers)
        await original.send_str(connected())
        await original.send_str(frame)
        assert json.loads((await original.receive(timeout=30)).data)["event"] == "media"
        replay = await http.ws_connect(websocket_url(second.url, "/twilio/media"), headers=headers)
        await replay.send_str(connected())
        await replay.send_str(frame)
        closing = await replay.receive(timeout=30)
        assert closing.type == aiohttp.WSMsgType.CLOSE, closing
        assert replay.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
        assert closing.extra == "replayed_start"
        await original.close()
