"""What a finished attempt leads to: a retry, the next round, or the contact's final word.

Runs inside the transaction that finished the attempt, and again whenever late news about it
arrives (an answering-machine result after the final status, the call's own report of what the
callee chose): it recomputes the outcome and replaces the follow-up it scheduled before, as long
as no dispatcher has claimed that follow-up yet. So the same callbacks in any order, or twice,
leave the same rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ivr_bridge.campaign.hours import CallingHours
from ivr_bridge.campaign.outcomes import DECISIONS, Outcome, attempt_outcome
from ivr_bridge.campaign.plan import CampaignPlan
from ivr_bridge.campaign.schedule import Round, first_dial, retry_at
from ivr_bridge.campaign.schema import attempts, campaigns, contacts, opt_outs


def as_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


async def attempt_by_sid(db: AsyncConnection, call_sid: str) -> dict[str, Any] | None:
    row = (
        (await db.execute(select(attempts).where(attempts.c.call_sid == call_sid)))
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


async def record_opt_out(db: AsyncConnection, phone: str, source: str, now: float) -> None:
    exists = (await db.execute(select(opt_outs.c.phone).where(opt_outs.c.phone == phone))).first()
    if exists is None:
        await db.execute(insert(opt_outs).values(phone=phone, at=now, source=source))


async def schedule_round(
    db: AsyncConnection,
    campaign_id: str,
    contact_id: int,
    rounds: list[Round],
    index: int,
    hours: CallingHours,
    zone: ZoneInfo,
    now: float,
    *,
    parent: int | None,
) -> None:
    """First attempt of round ``index``; a round whose window has gone is an
    ``expired_window`` attempt at once (and the next round is tried)."""
    while index < len(rounds):
        round_ = rounds[index]
        when = first_dial(round_, hours, zone, as_datetime(now))
        values = dict(
            campaign_id=campaign_id,
            contact_id=contact_id,
            round=index,
            number=1,
            parent_id=parent,
            not_after=round_.closes.timestamp(),
        )
        if when is not None:
            await db.execute(
                insert(attempts).values(**values, state="scheduled", scheduled_at=when.timestamp())
            )
            return
        await db.execute(
            insert(attempts).values(
                **values,
                state="done",
                scheduled_at=now,
                ended_at=now,
                outcome=Outcome.EXPIRED_WINDOW.value,
            )
        )
        index += 1
    await db.execute(
        update(contacts)
        .where(contacts.c.id == contact_id, contacts.c.outcome.is_(None))
        .values(outcome=Outcome.EXPIRED_WINDOW.value)
    )


async def settle(db: AsyncConnection, attempt_id: int, now: float) -> None:
    """Work out a finished attempt's outcome and what follows it (idempotent)."""
    row = dict(
        (await db.execute(select(attempts).where(attempts.c.id == attempt_id))).mappings().one()
    )
    contact = dict(
        (await db.execute(select(contacts).where(contacts.c.id == row["contact_id"])))
        .mappings()
        .one()
    )
    plan = CampaignPlan.model_validate_json(
        (
            await db.execute(
                select(campaigns.c.settings).where(campaigns.c.id == row["campaign_id"])
            )
        ).scalar_one()
    )
    if row["call_status"] is not None and row["call_sid"] is not None:
        decision = Outcome(row["decision"]) if row["decision"] else None
        outcome = attempt_outcome(
            row["call_status"],
            row["answered_by"],
            decision,
            voicemail_left=bool(row["voicemail_left"]),
        )
    else:
        outcome = Outcome(row["outcome"])
    await db.execute(
        update(attempts).where(attempts.c.id == attempt_id).values(outcome=outcome.value)
    )
    # Replace whatever this attempt scheduled before, as long as nobody has claimed it yet.
    followers = (
        await db.execute(
            select(attempts.c.id, attempts.c.state).where(attempts.c.parent_id == attempt_id)
        )
    ).all()
    if any(state != "scheduled" for _, state in followers):
        return  # its follow-up is already under way: late news cannot change the plan now
    if followers:
        await db.execute(delete(attempts).where(attempts.c.parent_id == attempt_id))
    await db.execute(update(contacts).where(contacts.c.id == contact["id"]).values(outcome=None))
    if outcome in DECISIONS:
        await db.execute(
            update(contacts).where(contacts.c.id == contact["id"]).values(outcome=outcome.value)
        )
        if outcome is Outcome.OPTED_OUT:
            await record_opt_out(db, contact["phone"], f"call {row['call_sid']}", now)
        return
    appointment = as_datetime(contact["appointment_at"])
    rounds = plan.schedule().rounds(appointment)
    hours, zone = plan.hours(), ZoneInfo(contact["timezone"])
    if row["round"] >= len(rounds):
        return
    round_ = rounds[row["round"]]
    failures = (
        await db.execute(
            select(func.count()).where(
                attempts.c.contact_id == contact["id"],
                attempts.c.round == row["round"],
                attempts.c.outcome == Outcome.FAILED.value,
            )
        )
    ).scalar_one()
    again = None
    if outcome is not Outcome.EXPIRED_WINDOW:
        again = retry_at(
            plan.retries(),
            outcome,
            attempts=row["number"],
            failures=failures,
            error_code=row["error_code"],
            ended_at=as_datetime(row["ended_at"] or now),
            round_=round_,
            hours=hours,
            zone=zone,
        )
    if again is not None:
        await db.execute(
            insert(attempts).values(
                campaign_id=row["campaign_id"],
                contact_id=contact["id"],
                round=row["round"],
                number=row["number"] + 1,
                parent_id=attempt_id,
                state="scheduled",
                scheduled_at=again.timestamp(),
                not_after=round_.closes.timestamp(),
            )
        )
        return
    if row["round"] + 1 < len(rounds) and outcome is not Outcome.FAX:
        await schedule_round(
            db,
            row["campaign_id"],
            contact["id"],
            rounds,
            row["round"] + 1,
            hours,
            zone,
            now,
            parent=attempt_id,
        )
        return
    await db.execute(
        update(contacts).where(contacts.c.id == contact["id"]).values(outcome=outcome.value)
    )
