"""The campaign store on SQLite and PostgreSQL: scheduling, claims, callbacks in any order."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from ivr_bridge.campaign.contacts import Contact
from ivr_bridge.campaign.outcomes import Outcome
from ivr_bridge.campaign.plan import CampaignPlan
from ivr_bridge.campaign.schema import SCHEMA_VERSION, migrate, schema_version
from ivr_bridge.campaign.store import CampaignStore
from ivr_bridge.errors import CampaignError
from tests.campaign.conftest import StoreFactory

CHICAGO = ZoneInfo("America/Chicago")
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()  # Tuesday 06:00 in Chicago


def local(*args: int, zone: ZoneInfo = CHICAGO) -> float:
    return datetime(*args, tzinfo=zone).timestamp()


def contact(line: int, phone: str, *, zone: str = "America/Chicago", day: int = 4) -> Contact:
    appointment = datetime(2026, 12, day, 15, 0, tzinfo=ZoneInfo(zone)).astimezone(UTC)
    return Contact(line, phone, f"Patient {line}", appointment, zone)


async def campaign(store: CampaignStore, name: str = "flu", **plan: object) -> str:
    await store.create_campaign(
        name,
        name=name.title(),
        caller_id="+15005550006",
        app="reminder",
        plan=CampaignPlan.model_validate(plan),
        now=NOW,
    )
    await store.set_status(name, "running")
    return name


async def test_first_calls_are_scheduled_in_the_callees_calling_hours(store: CampaignStore) -> None:
    cid = await campaign(store, leads="24h")
    # Friday 15:00 appointments; the round opens Thursday 15:00 local wherever the callee is.
    await store.add_contacts(
        cid,
        [contact(2, "+13125550100"), contact(3, "+12125550101", zone="Pacific/Honolulu")],
        now=NOW,
    )
    rows = {r["phone"]: r for r in await store.attempt_rows(cid)}
    assert rows["+13125550100"]["scheduled_at"] == local(2026, 12, 3, 15, 0)
    honolulu = ZoneInfo("Pacific/Honolulu")
    assert rows["+12125550101"]["scheduled_at"] == local(2026, 12, 3, 15, 0, zone=honolulu)


async def test_a_contact_for_whom_it_is_22_00_is_called_at_08_00_local(
    store: CampaignStore,
) -> None:
    cid = await campaign(
        store, window_start="2026-12-01T00:00:00Z", window_end="2026-12-04T00:00:00Z"
    )
    now = local(2026, 12, 1, 22, 0)
    await store.add_contacts(cid, [contact(2, "+13125550100")], now=now)
    [row] = await store.attempt_rows(cid)
    assert row["scheduled_at"] == local(2026, 12, 2, 8, 0)
    assert await store.claim_due("w1", now=local(2026, 12, 2, 7, 59)) == []
    [claimed] = await store.claim_due("w1", now=local(2026, 12, 2, 8, 0))
    assert claimed.phone == "+13125550100"


async def test_a_round_out_of_reach_expires_instead_of_dialling_late(store: CampaignStore) -> None:
    cid = await campaign(store, leads="24h")
    late = local(2026, 12, 4, 14, 0)  # an hour before the appointment: past the 2 h cutoff
    await store.add_contacts(cid, [contact(2, "+13125550100")], now=late)
    [row] = await store.attempt_rows(cid)
    assert (row["state"], row["outcome"]) == ("done", "expired_window")
    assert await store.contact_outcomes(cid) == {"+13125550100": "expired_window"}


async def test_claims_respect_pause_and_the_concurrency_cap(store: CampaignStore) -> None:
    cid = await campaign(store, leads="24h", max_concurrent=2)
    await store.add_contacts(cid, [contact(i, f"+1312555{i:04d}") for i in range(2, 7)], now=NOW)
    due = local(2026, 12, 3, 15, 0)
    await store.set_status(cid, "paused")
    assert await store.claim_due("w1", now=due) == []
    await store.set_status(cid, "running")
    first = await store.claim_due("w1", now=due)
    assert len(first) == 2
    assert await store.claim_due("w2", now=due) == []  # two live already
    await store.mark_dialed(first[0].attempt_id, "CA" + "1" * 32, now=due)
    await store.apply_status("CA" + "1" * 32, "busy", sequence=2, now=due + 20)
    [third] = await store.claim_due("w2", now=due + 21)
    assert third.attempt_id not in {c.attempt_id for c in first}


async def test_two_dispatchers_never_claim_the_same_attempt(store_factory: StoreFactory) -> None:
    setup = await store_factory()
    cid = await campaign(setup, leads="24h", max_concurrent=10_000)
    # 300 here; the dispatchers' own test dials 1,000 through the REST stand-in on PostgreSQL.
    await setup.add_contacts(cid, [contact(i, f"+1312{i:07d}") for i in range(300)], now=NOW)
    due = local(2026, 12, 3, 15, 0)

    async def dispatcher(name: str) -> list[int]:
        store = await store_factory()
        mine: list[int] = []
        idle = 0
        while idle < 3:  # a claim can come back empty when the other took every candidate
            batch = await store.claim_due(name, now=due, limit=7)
            mine.extend(c.attempt_id for c in batch)
            idle = 0 if batch else idle + 1
            await asyncio.sleep(0)
        return mine

    a, b = await asyncio.gather(dispatcher("replica-a"), dispatcher("replica-b"))
    assert not set(a) & set(b), "an attempt was claimed twice"
    assert len(a) + len(b) == 300, "attempts were left unclaimed"


async def test_callbacks_twice_late_or_out_of_order_change_nothing(store: CampaignStore) -> None:
    cid = await campaign(store, leads="24h")
    await store.add_contacts(cid, [contact(2, "+13125550100")], now=NOW)
    due = local(2026, 12, 3, 15, 0)
    [claimed] = await store.claim_due("w1", now=due)
    sid = "CA" + "2" * 32
    await store.mark_dialed(claimed.attempt_id, sid, now=due)
    assert await store.apply_status(sid, "ringing", sequence=1, now=due + 1)
    assert await store.apply_status(sid, "busy", sequence=3, now=due + 10)
    assert await store.apply_status(sid, "busy", sequence=3, now=due + 11)  # duplicate
    assert await store.apply_status(sid, "ringing", sequence=1, now=due + 12)  # late
    assert not await store.apply_status("CA" + "9" * 32, "completed", sequence=4, now=due)
    rows = await store.attempt_rows(cid)
    assert [(r["number"], r["state"], r["outcome"]) for r in rows] == [
        (1, "done", "busy"),
        (2, "scheduled", None),
    ]
    assert rows[1]["scheduled_at"] == pytest.approx(due + 10 + 600)  # busy: again in 10 min


async def test_a_late_machine_result_replaces_the_follow_up(store: CampaignStore) -> None:
    cid = await campaign(store, leads="48h,24h")
    await store.add_contacts(cid, [contact(2, "+13125550100")], now=NOW)
    due = local(2026, 12, 2, 15, 0)
    [claimed] = await store.claim_due("w1", now=due)
    sid = "CA" + "3" * 32
    await store.mark_dialed(claimed.attempt_id, sid, now=due)
    await store.apply_status(sid, "completed", sequence=4, now=due + 30, duration_s=25)
    # Completed with nobody's decision yet: a person who hung up; the next round follows.
    rows = await store.attempt_rows(cid)
    assert [(r["round"], r["number"], r["outcome"]) for r in rows] == [
        (0, 1, "no_decision"),
        (1, 1, None),
    ]
    # The AMD callback arrives after the final status: it was a machine, no message was left,
    # so this round tries again in 2 hours instead.
    await store.apply_amd(sid, "machine_end_silence", 4100, now=due + 31)
    rows = await store.attempt_rows(cid)
    assert [(r["round"], r["number"], r["outcome"]) for r in rows] == [
        (0, 1, "no_answer"),
        (0, 2, None),
    ]
    assert rows[1]["scheduled_at"] == pytest.approx(due + 30 + 7200)


async def test_an_opt_out_said_on_a_call_is_recorded_across_campaigns(store: CampaignStore) -> None:
    flu = await campaign(store, "flu", leads="24h")
    dental = await campaign(store, "dental", leads="24h")
    for cid in (flu, dental):
        await store.add_contacts(cid, [contact(2, "+13125550100")], now=NOW)
    due = local(2026, 12, 3, 15, 0)
    claimed = await store.claim_due("w1", now=due, limit=1)
    sid = "CA" + "4" * 32
    await store.mark_dialed(claimed[0].attempt_id, sid, now=due)
    await store.apply_call_result(
        sid, decision=Outcome.OPTED_OUT, voicemail_left=False, first_audio_ms=300, now=due + 20
    )
    assert await store.opted_out("+13125550100")
    await store.apply_status(sid, "completed", sequence=4, now=due + 25, answered_by="human")
    assert (await store.contact_outcomes(claimed[0].campaign_id))["+13125550100"] == "opted_out"


async def test_a_database_from_a_newer_release_is_refused(store: CampaignStore) -> None:
    async with store.engine.begin() as db:
        await db.execute(update(schema_version).values(version=SCHEMA_VERSION + 1))
    with pytest.raises(CampaignError, match="upgrade ivr-bridge"):
        await migrate(store.engine, now=NOW)


async def test_a_second_campaign_with_the_same_name_is_refused(store: CampaignStore) -> None:
    await campaign(store, "flu")
    with pytest.raises(CampaignError, match="exists already"):
        await campaign(store, "flu")
