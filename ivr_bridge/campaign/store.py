"""Campaigns, contacts and attempts in the database, and the rules that move them along.

Every state change is one short transaction, so a dispatcher killed at any point leaves the
database consistent, and every change a Twilio callback causes is idempotent: a callback that
comes twice, late or out of order changes nothing it should not. An attempt moves
``scheduled`` → ``dialing`` (claimed by one dispatcher) → ``live`` (Twilio gave a CallSid) →
``done`` (an outcome). ``settle`` decides what a finished attempt leads to (a retry, the next
round, or the contact's final word) and can run again when late news arrives: the follow-up it
scheduled before is replaced as long as nobody has claimed it.

Claiming uses ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so dispatchers on several
replicas never take the same attempt; every claim is also a compare-and-set on the state, which
is what makes it safe on SQLite (one writer at a time) too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ivr_bridge.campaign.callbacks import CallbackUpdates
from ivr_bridge.campaign.contacts import Contact
from ivr_bridge.campaign.outcomes import Outcome
from ivr_bridge.campaign.plan import CampaignPlan
from ivr_bridge.campaign.queries import StoreQueries
from ivr_bridge.campaign.reminder import ReminderDetails
from ivr_bridge.campaign.schema import attempts, campaigns, contacts, migrate, opt_outs, pace
from ivr_bridge.campaign.settle import (
    as_datetime,
    record_opt_out,
    schedule_round,
    settle,
)
from ivr_bridge.db import async_engine, redacted
from ivr_bridge.errors import CampaignError


@dataclass(frozen=True, slots=True)
class Claimed:
    """An attempt a dispatcher now owns, with what dialling it needs."""

    attempt_id: int
    campaign_id: str
    contact_id: int
    phone: str
    round: int
    number: int
    not_after: float
    caller_id: str
    app: str
    plan: CampaignPlan
    timezone: str
    language: str


def engine_for(url: str) -> AsyncEngine:
    """``sqlite:///campaigns.db`` / ``postgresql://host/db`` → an async engine; on SQLite every
    transaction takes the write lock at its start (they read, then write)."""
    try:
        return async_engine(url, immediate_writes=True)
    except Exception as exc:  # an unparsable URL or a missing driver, named as a setting
        raise CampaignError(
            f"IVR_CAMPAIGN_DB {redacted(url)!r}: {exc} "
            "(use sqlite:///path.db or postgresql://host:5432/db)"
        ) from None


class CampaignStore(CallbackUpdates, StoreQueries):
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @classmethod
    async def open(cls, url: str, *, now: float) -> CampaignStore:
        store = cls(engine_for(url))
        await migrate(store.engine, now=now)
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    # -- campaigns and contacts --------------------------------------------------------------

    async def create_campaign(
        self,
        campaign_id: str,
        *,
        name: str,
        caller_id: str,
        app: str,
        plan: CampaignPlan,
        now: float,
    ) -> None:
        plan.schedule()  # refuse a plan that cannot schedule anything before storing it
        async with self.engine.begin() as db:
            try:
                await db.execute(
                    insert(campaigns).values(
                        id=campaign_id,
                        name=name,
                        status="draft",
                        caller_id=caller_id,
                        app=app,
                        settings=plan.model_dump_json(),
                        created_at=now,
                    )
                )
            except IntegrityError:
                raise CampaignError(f"a campaign named {campaign_id!r} exists already") from None

    async def campaign(self, campaign_id: str) -> dict[str, Any]:
        async with self.engine.connect() as db:
            row = (
                (await db.execute(select(campaigns).where(campaigns.c.id == campaign_id)))
                .mappings()
                .first()
            )
        if row is None:
            raise CampaignError(f"no campaign named {campaign_id!r}")
        return dict(row)

    async def plan(self, campaign_id: str) -> CampaignPlan:
        return CampaignPlan.model_validate_json((await self.campaign(campaign_id))["settings"])

    async def set_status(self, campaign_id: str, status: str) -> None:
        if status not in ("draft", "running", "paused", "done"):
            raise CampaignError(f"campaign status {status!r} is not draft/running/paused/done")
        await self.campaign(campaign_id)
        async with self.engine.begin() as db:
            await db.execute(
                update(campaigns).where(campaigns.c.id == campaign_id).values(status=status)
            )

    async def add_contacts(
        self, campaign_id: str, batch: Sequence[Contact], *, now: float
    ) -> list[str]:
        """Store contacts and their first attempts in one transaction (all or none); returns
        problems (``line N: +1... is in this campaign already``) for the ones it skipped."""
        plan = await self.plan(campaign_id)
        schedule, hours = plan.schedule(), plan.hours()
        problems = []
        async with self.engine.begin() as db:
            known = set(
                (
                    await db.execute(
                        select(contacts.c.phone).where(contacts.c.campaign_id == campaign_id)
                    )
                ).scalars()
            )
            for contact in batch:
                if contact.phone in known:
                    problems.append(
                        f"line {contact.line}: {contact.phone} is in this campaign already"
                    )
                    continue
                known.add(contact.phone)
                contact_id = (
                    await db.execute(
                        insert(contacts)
                        .values(
                            campaign_id=campaign_id,
                            line=contact.line,
                            phone=contact.phone,
                            name=contact.name,
                            appointment_at=contact.appointment.timestamp(),
                            timezone=contact.timezone,
                            language=contact.language,
                            fields=json.dumps(dict(contact.fields)),
                        )
                        .returning(contacts.c.id)
                    )
                ).scalar_one()
                rounds = schedule.rounds(contact.appointment)
                await schedule_round(
                    db, campaign_id, contact_id, rounds, 0, hours, contact.zone, now, parent=None
                )
        return problems

    # -- the dispatcher's side ---------------------------------------------------------------

    async def claim_due(self, worker: str, *, now: float, limit: int = 10) -> list[Claimed]:
        """Take up to ``limit`` due attempts of running campaigns, within each campaign's
        concurrency cap. Each is claimed by exactly one caller of this method."""
        async with self.engine.begin() as db:
            counts = await db.execute(
                select(attempts.c.campaign_id, func.count())
                .where(attempts.c.state.in_(("dialing", "live")))
                .group_by(attempts.c.campaign_id)
            )
            busy: dict[str, int] = {str(cid): int(n) for cid, n in counts.all()}
            due = (
                await db.execute(
                    select(attempts.c.id, attempts.c.campaign_id)
                    .join(campaigns, campaigns.c.id == attempts.c.campaign_id)
                    .where(
                        attempts.c.state == "scheduled",
                        attempts.c.scheduled_at <= now,
                        campaigns.c.status == "running",
                    )
                    .order_by(attempts.c.scheduled_at, attempts.c.id)
                    .limit(limit * 4)
                    .with_for_update(of=attempts, skip_locked=True)
                )
            ).all()
            plans: dict[str, CampaignPlan] = {}
            taken = []
            for attempt_id, campaign_id in due:
                if campaign_id not in plans:
                    plans[campaign_id] = CampaignPlan.model_validate_json(
                        (
                            await db.execute(
                                select(campaigns.c.settings).where(campaigns.c.id == campaign_id)
                            )
                        ).scalar_one()
                    )
                if busy.get(campaign_id, 0) >= plans[campaign_id].max_concurrent:
                    continue
                result = await db.execute(
                    update(attempts)
                    .where(attempts.c.id == attempt_id, attempts.c.state == "scheduled")
                    .values(state="dialing", claimed_by=worker, claimed_at=now)
                )
                if result.rowcount == 1:
                    busy[campaign_id] = busy.get(campaign_id, 0) + 1
                    taken.append(attempt_id)
                if len(taken) >= limit:
                    break
            if not taken:
                return []
            rows = (
                await db.execute(
                    select(
                        attempts.c.id,
                        attempts.c.campaign_id,
                        attempts.c.contact_id,
                        contacts.c.phone,
                        attempts.c.round,
                        attempts.c.number,
                        attempts.c.not_after,
                        campaigns.c.caller_id,
                        campaigns.c.app,
                        campaigns.c.settings,
                        contacts.c.timezone,
                        contacts.c.language,
                    )
                    .join(contacts, contacts.c.id == attempts.c.contact_id)
                    .join(campaigns, campaigns.c.id == attempts.c.campaign_id)
                    .where(attempts.c.id.in_(taken))
                    .order_by(attempts.c.scheduled_at, attempts.c.id)
                )
            ).all()
        return [
            Claimed(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                r[6],
                r[7],
                r[8],
                CampaignPlan.model_validate_json(r[9]),
                r[10],
                r[11],
            )
            for r in rows
        ]

    async def mark_dialed(self, attempt_id: int, call_sid: str, *, now: float) -> None:
        async with self.engine.begin() as db:
            await db.execute(
                update(attempts)
                .where(attempts.c.id == attempt_id, attempts.c.state == "dialing")
                .values(state="live", call_sid=call_sid, dialed_at=now, call_status="queued")
            )

    async def release(self, attempt_id: int, *, at: float, claimed_at: float | None = None) -> bool:
        """Give a claimed attempt back, due at ``at`` (the dial was refused for now: 429).
        ``claimed_at``: only if the claim is still the one seen then (a reconciler must not
        take back a claim its dispatcher has just renewed to dial it). True: given back."""
        conditions = [attempts.c.id == attempt_id, attempts.c.state == "dialing"]
        if claimed_at is not None:
            conditions.append(attempts.c.claimed_at == claimed_at)
        async with self.engine.begin() as db:
            result = await db.execute(
                update(attempts)
                .where(*conditions)
                .values(state="scheduled", scheduled_at=at, claimed_by=None, claimed_at=None)
            )
        return result.rowcount == 1

    async def renew_claim(self, attempt_id: int, worker: str, *, now: float) -> bool:
        """Just before the request goes out: is the attempt still this worker's? (A claim that
        waited past the reconcilers' grace may have been given back and taken by another
        dispatcher.) Renewing it keeps every reconciler off it while the request is in
        flight."""
        async with self.engine.begin() as db:
            result = await db.execute(
                update(attempts)
                .where(
                    attempts.c.id == attempt_id,
                    attempts.c.state == "dialing",
                    attempts.c.claimed_by == worker,
                )
                .values(claimed_at=now)
            )
        return result.rowcount == 1

    async def finish_undialled(
        self, attempt_id: int, outcome: Outcome, *, now: float, error_code: int | None = None
    ) -> None:
        """End a claimed attempt that was never placed (expired window, opted out, refused)."""
        async with self.engine.begin() as db:
            result = await db.execute(
                update(attempts)
                .where(attempts.c.id == attempt_id, attempts.c.state == "dialing")
                .values(
                    state="done",
                    outcome=outcome.value,
                    ended_at=now,
                    error_code=error_code,
                    call_status="failed" if outcome is Outcome.FAILED else None,
                )
            )
            if result.rowcount == 1:
                await settle(db, attempt_id, now)

    async def reserve_dial_slot(self, account: str, *, cps: float, now: float) -> float:
        """The instant this dial may be sent, at most ``cps`` calls a second for the account
        across every dispatcher on this database (a token bucket with a burst of one, kept
        as the next free instant in one row, updated under its row lock)."""
        gap = 1.0 / cps
        for _ in range(2):
            async with self.engine.begin() as db:
                row = (
                    await db.execute(
                        select(pace.c.next_at).where(pace.c.account == account).with_for_update()
                    )
                ).first()
                if row is not None:
                    slot = max(float(row[0]), now)
                    await db.execute(
                        update(pace).where(pace.c.account == account).values(next_at=slot + gap)
                    )
                    return slot
            try:
                async with self.engine.begin() as db:
                    await db.execute(insert(pace).values(account=account, next_at=now + gap))
                return now
            except IntegrityError:  # another dispatcher made the row first: take a slot in it
                continue
        raise CampaignError(f"cannot reserve a dial slot for {account}")

    # -- the reminder call's own view (``dialog.reminder.ReminderBackend``) -------------------

    async def reminder_details(self, attempt_id: int) -> ReminderDetails | None:
        async with self.engine.connect() as db:
            row = (
                await db.execute(
                    select(
                        contacts.c.name,
                        contacts.c.appointment_at,
                        contacts.c.timezone,
                        campaigns.c.settings,
                        campaigns.c.caller_id,
                        contacts.c.fields,
                    )
                    .select_from(attempts)
                    .join(contacts, contacts.c.id == attempts.c.contact_id)
                    .join(campaigns, campaigns.c.id == attempts.c.campaign_id)
                    .where(attempts.c.id == attempt_id)
                )
            ).first()
        if row is None:
            return None
        name, appointment_at, zone, settings, caller_id, fields = row
        plan = CampaignPlan.model_validate_json(settings)
        return ReminderDetails(
            name=name,
            appointment=as_datetime(appointment_at).astimezone(ZoneInfo(zone)),
            business=plan.business,
            callback_number=plan.callback_number or caller_id,
            fields=json.loads(fields),
        )

    async def report_reminder(
        self, attempt_id: int, call_sid: str, *, decision: str | None, voicemail_left: bool
    ) -> None:
        await self.apply_call_result(
            call_sid,
            decision=Outcome(decision) if decision else None,
            voicemail_left=voicemail_left,
            first_audio_ms=None,
            now=time.time(),
        )

    # -- opt-outs ----------------------------------------------------------------------------

    async def opt_out(self, phone: str, *, source: str, now: float) -> None:
        async with self.engine.begin() as db:
            await record_opt_out(db, phone, source, now)

    async def opted_out(self, phone: str) -> bool:
        async with self.engine.connect() as db:
            return (
                await db.execute(select(opt_outs.c.phone).where(opt_outs.c.phone == phone))
            ).first() is not None
