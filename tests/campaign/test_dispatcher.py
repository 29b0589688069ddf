"""The dispatcher on a simulated clock: calling hours at dial time, pace, crashes and restarts."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ivr_bridge.campaign.contacts import Contact
from ivr_bridge.campaign.dialer import TwilioDialer
from ivr_bridge.campaign.dispatcher import Dispatcher
from ivr_bridge.campaign.plan import CampaignPlan
from ivr_bridge.campaign.store import CampaignStore
from ivr_bridge.campaign.testing import DispatcherCrashed, ScriptedDialer
from ivr_bridge.sim.twilio_rest import Persona, TwilioRestStandIn
from tests.campaign.conftest import StoreFactory

CHICAGO = ZoneInfo("America/Chicago")
ACCOUNT = "AC" + "7" * 32


def local(*args: int) -> float:
    return datetime(*args, tzinfo=CHICAGO).timestamp()


class SimClock:
    """One clock for the dispatcher, the dialer and the store: sleeping advances it."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


async def setup(
    store: CampaignStore,
    phones: list[str],
    *,
    now: float,
    appointment: datetime | None = None,
    **plan: object,
) -> str:
    """A running campaign; the appointment is Fri 2026-12-04 15:00 Chicago unless given."""
    await store.create_campaign(
        "flu",
        name="Flu",
        caller_id="+15005550006",
        app="reminder",
        plan=CampaignPlan.model_validate(plan),
        now=now,
    )
    if appointment is None:
        appointment = datetime(2026, 12, 4, 15, 0, tzinfo=CHICAGO).astimezone(UTC)
    batch = [
        Contact(i + 2, p, f"P {i}", appointment, "America/Chicago") for i, p in enumerate(phones)
    ]
    await store.add_contacts("flu", batch, now=now)
    await store.set_status("flu", "running")
    return "flu"


async def test_22_00_local_waits_and_the_call_goes_at_08_00_local(store: CampaignStore) -> None:
    clock = SimClock(local(2026, 12, 1, 22, 0))
    await setup(store, ["+13125550100"], now=clock.now, leads="72h")  # round open since Tue 15:00
    dialer = ScriptedDialer(clock=clock)
    dispatcher = Dispatcher(
        store, dialer, worker="w", account=ACCOUNT, clock=clock, sleep=clock.sleep
    )
    assert await dispatcher.step() == 0
    clock.now = local(2026, 12, 2, 7, 59)
    assert await dispatcher.step() == 0
    clock.now = local(2026, 12, 2, 8, 0)
    assert await dispatcher.step() == 1
    [(at, request)] = dialer.requests
    assert at == local(2026, 12, 2, 8, 0)
    assert request.to == "+13125550100"


async def test_hours_are_checked_again_at_dial_time(store: CampaignStore) -> None:
    # Claimed at 20:54, but the pace (40 s, plus its 5 % margin) makes the third wait past
    # 20:55, the last dial time.
    clock = SimClock(local(2026, 12, 2, 20, 54))
    phones = [f"+1312555{i:04d}" for i in range(3)]
    await setup(store, phones, now=clock.now, leads="48h")
    dialer = ScriptedDialer(clock=clock)
    dispatcher = Dispatcher(
        store, dialer, worker="w", account=ACCOUNT, cps=1 / 40, clock=clock, sleep=clock.sleep
    )
    assert await dispatcher.step() == 3
    assert [at for at, _ in dialer.requests] == [
        local(2026, 12, 2, 20, 54),
        local(2026, 12, 2, 20, 54, 42),
    ]
    rows = await store.attempt_rows("flu")
    third = next(r for r in rows if r["phone"] == phones[2])
    assert third["state"] == "scheduled" and third["scheduled_at"] == local(2026, 12, 3, 8, 0)


async def test_the_pace_holds_across_dispatchers(store_factory: StoreFactory) -> None:
    clock = SimClock(local(2026, 12, 3, 9, 0))
    first = await store_factory()
    await setup(first, [f"+1312555{i:04d}" for i in range(12)], now=clock.now, leads="48h")
    dialer = ScriptedDialer(clock=clock)
    a = Dispatcher(
        first, dialer, worker="a", account=ACCOUNT, cps=2, batch=3, clock=clock, sleep=clock.sleep
    )
    b = Dispatcher(
        await store_factory(),
        dialer,
        worker="b",
        account=ACCOUNT,
        cps=2,
        batch=3,
        clock=clock,
        sleep=clock.sleep,
    )
    while await a.step() + await b.step():
        pass
    times = [at for at, _ in dialer.requests]
    assert len(times) == 12
    assert all(later - earlier >= 0.5 for earlier, later in itertools.pairwise(times))


async def test_a_crash_after_twilio_took_the_call_does_not_dial_it_again(
    store_factory: StoreFactory,
) -> None:
    clock = SimClock(local(2026, 12, 3, 9, 0))
    store = await store_factory()
    await setup(store, ["+13125550100", "+13125550101"], now=clock.now, leads="48h")
    dialer = ScriptedDialer(clock=clock, crash_after_placing={1})
    crashed = Dispatcher(store, dialer, worker="a", account=ACCOUNT, clock=clock, sleep=clock.sleep)
    with pytest.raises(DispatcherCrashed):
        await crashed.step()
    # A new process on the same database: first it reconciles what the dead one left.
    restarted = Dispatcher(
        await store_factory(), dialer, worker="b", account=ACCOUNT, clock=clock, sleep=clock.sleep
    )
    clock.now += 200
    # Both claims were left open: the call placed (adopted) and the one never reached.
    assert await restarted.reconcile() == 2
    await restarted.step()
    dialled = Counter(request.to for _, request in dialer.requests)
    assert dialled == {"+13125550100": 1, "+13125550101": 1}
    rows = {r["phone"]: r for r in await store.attempt_rows("flu")}
    assert rows["+13125550100"]["state"] == "live"
    assert rows["+13125550100"]["call_sid"] in dialer.placed


async def test_a_crash_before_the_request_dials_the_contact_once_later(
    store: CampaignStore,
) -> None:
    clock = SimClock(local(2026, 12, 3, 9, 0))
    await setup(store, ["+13125550100"], now=clock.now, leads="48h")
    await store.claim_due("dead-replica", now=clock.now)  # claimed, then the process died
    dialer = ScriptedDialer(clock=clock)
    dispatcher = Dispatcher(
        store, dialer, worker="w", account=ACCOUNT, clock=clock, sleep=clock.sleep
    )
    assert await dispatcher.step() == 0  # still claimed by the dead one
    clock.now += 200
    assert await dispatcher.reconcile() == 1
    assert await dispatcher.step() == 1
    assert [request.to for _, request in dialer.requests] == ["+13125550100"]


async def test_a_claim_that_waited_past_the_grace_is_not_dialled_by_both(
    store_factory: StoreFactory,
) -> None:
    """Many replicas share one slow pace, so a claim can wait longer than the reconcilers'
    grace: another replica gives it back and dials it. The first must then not dial it too."""
    clock = SimClock(local(2026, 12, 3, 9, 0))
    store = await store_factory()
    await setup(store, ["+13125550100", "+13125550101"], now=clock.now, leads="48h")
    dialer = ScriptedDialer(clock=clock)
    results: list[str] = []
    other = Dispatcher(
        await store_factory(), dialer, worker="b", account=ACCOUNT, clock=clock, sleep=clock.sleep
    )

    async def slow_pace(seconds: float) -> None:
        # While "a" waits for its slot, "b"'s reconciler finds the claim stale and no call for
        # it, gives it back, and "b" dials it.
        clock.now += max(seconds, 200.0)
        assert await other.reconcile() >= 1
        assert await other.step() == 1

    first = Dispatcher(
        store,
        dialer,
        worker="a",
        account=ACCOUNT,
        cps=0.01,
        clock=clock,
        sleep=slow_pace,
        on_result=results.append,
    )
    assert await first.step() == 2
    assert results == ["placed", "claim_lost"]
    assert Counter(request.to for _, request in dialer.requests) == {
        "+13125550100": 1,
        "+13125550101": 1,
    }


async def test_an_opted_out_number_is_never_dialled(store: CampaignStore) -> None:
    clock = SimClock(local(2026, 12, 3, 9, 0))
    await setup(store, ["+13125550100"], now=clock.now, leads="48h")
    await store.opt_out("+13125550100", source="operator", now=clock.now)
    dialer = ScriptedDialer(clock=clock)
    dispatcher = Dispatcher(
        store, dialer, worker="w", account=ACCOUNT, clock=clock, sleep=clock.sleep
    )
    assert await dispatcher.step() == 1
    assert dialer.requests == []
    assert await store.contact_outcomes("flu") == {"+13125550100": "opted_out"}


@pytest.mark.parametrize("store_factory", ["postgresql"], indirect=True)
async def test_two_dispatchers_over_1000_contacts_dial_each_once(
    store_factory: StoreFactory,
) -> None:
    """Real HTTP: twilio-python's async client into the REST stand-in, which answers at once."""
    now = time.time()
    first = await store_factory()
    phones = [f"+1312{i:07d}" for i in range(1000)]
    plan = {
        "window_start": "2020-01-01T00:00:00Z",
        "window_end": "2100-01-01T00:00:00Z",
        "hours_start": "00:00",
        "hours_end": "23:59",
        "days": "all",
        "call_room_min": 0,
        "max_concurrent": 10_000,
    }
    # On the wall clock: the appointment 36 h ahead, so the 48 h round is open whenever it runs.
    soon = datetime.fromtimestamp(now, UTC) + timedelta(hours=36)
    await setup(first, phones, now=now, appointment=soon, **plan)
    standin = TwilioRestStandIn(
        account_sid=ACCOUNT, auth_token="t" * 32, personas=lambda _: Persona("failed")
    )
    await standin.start()
    dialers = [
        TwilioDialer(
            ACCOUNT, "t" * 32, public_url="http://127.0.0.1:9", api_base_url=standin.base_url
        )
        for _ in range(2)
    ]
    dispatchers = [
        Dispatcher(
            await store_factory(),
            dialer,
            worker=f"replica-{n}",
            account=ACCOUNT,
            cps=500,
            poll_s=0.01,
            batch=20,
        )
        for n, dialer in enumerate(dialers)
    ]
    tasks = [asyncio.create_task(d.run()) for d in dispatchers]
    try:
        async with asyncio.timeout(120):
            while len(standin.calls) < len(phones):  # noqa: ASYNC110 - polling the stand-in
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # room for a double dial to show up
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for dialer in dialers:
            await dialer.close()
        await standin.close()
    dialled = Counter(call.to for call in standin.calls.values())
    assert len(dialled) == 1000
    assert max(dialled.values()) == 1, [p for p, n in dialled.items() if n > 1][:5]
    assert all(d.dialled > 0 for d in dispatchers), "both replicas should have dialled"


async def test_a_bridge_that_dials_names_the_settings_it_lacks(store: CampaignStore) -> None:
    from ivr_bridge.config import ConfigError, Settings
    from ivr_bridge.server.outbound import start_dialling

    with pytest.raises(ConfigError) as info:
        settings = Settings(
            campaign_db="sqlite:///x.db",
            twilio_account_sid=None,
            twilio_auth_token=None,
            public_url=None,
        )
        start_dialling(settings, store, "http://127.0.0.1:1")
    message = str(info.value)
    assert "TWILIO_ACCOUNT_SID" in message and "IVR_PUBLIC_URL" in message
    assert "IVR_DISPATCHER=false" in message


async def test_a_database_hiccup_does_not_stop_the_dispatcher(store: CampaignStore) -> None:
    clock = SimClock(local(2026, 12, 3, 9, 0))
    await setup(store, ["+13125550100"], now=clock.now, leads="48h")
    dialer = ScriptedDialer(clock=clock)
    dispatcher = Dispatcher(
        store, dialer, worker="w", account=ACCOUNT, clock=clock, sleep=clock.sleep
    )
    real_claim, calls = store.claim_due, []

    async def flaky_claim(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("connection refused")
        return await real_claim(*args, **kwargs)  # type: ignore[arg-type]

    store.claim_due = flaky_claim  # type: ignore[method-assign]
    task = asyncio.create_task(dispatcher.run())
    try:
        async with asyncio.timeout(10):
            while not dialer.requests:  # noqa: ASYNC110 - the scripted dialer's log
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(calls) >= 2 and dialer.requests[0][1].to == "+13125550100"
