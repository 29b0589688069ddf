"""Reading campaigns back: attempt rows for export and status, outcome counts for metrics, and
what a reconciler must look into."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ivr_bridge.campaign.schema import attempts, campaigns, contacts


@dataclass(frozen=True, slots=True)
class OutcomeCount:
    campaign: str
    outcome: str | None
    """None: not finished yet."""
    answered_by: str | None
    placed: bool
    """Twilio took the call (an attempt ended as opted out or refused never rang)."""
    attempts: int


class StoreQueries:
    """The read-only half of ``CampaignStore``."""

    engine: AsyncEngine

    async def attempt_rows(self, campaign_id: str) -> list[dict[str, Any]]:
        """One row per attempt, with its contact, in dialling order (for export and status)."""
        async with self.engine.connect() as db:
            rows = (
                (
                    await db.execute(
                        select(
                            attempts,
                            contacts.c.phone,
                            contacts.c.name,
                            contacts.c.line,
                            contacts.c.appointment_at,
                            contacts.c.timezone,
                            contacts.c.outcome.label("contact_outcome"),
                        )
                        .join(contacts, contacts.c.id == attempts.c.contact_id)
                        .where(attempts.c.campaign_id == campaign_id)
                        .order_by(attempts.c.scheduled_at, attempts.c.id)
                    )
                )
                .mappings()
                .all()
            )
        return [dict(row) for row in rows]

    async def contact_outcomes(self, campaign_id: str) -> dict[str, str | None]:
        async with self.engine.connect() as db:
            rows = (
                await db.execute(
                    select(contacts.c.phone, contacts.c.outcome).where(
                        contacts.c.campaign_id == campaign_id
                    )
                )
            ).all()
        return {phone: outcome for phone, outcome in rows}

    async def stale(self, *, claimed_before: float, dialed_before: float) -> list[dict[str, Any]]:
        """Attempts a reconciler must look into: claimed but never placed (a dispatcher died
        mid-dial), or placed and never given a final status (a callback lost)."""
        async with self.engine.connect() as db:
            rows = (
                (
                    await db.execute(
                        select(
                            attempts, contacts.c.phone, campaigns.c.caller_id, campaigns.c.settings
                        )
                        .join(contacts, contacts.c.id == attempts.c.contact_id)
                        .join(campaigns, campaigns.c.id == attempts.c.campaign_id)
                        .where(
                            (
                                and_(
                                    attempts.c.state == "dialing",
                                    attempts.c.claimed_at < claimed_before,
                                )
                            )
                            | (
                                and_(
                                    attempts.c.state == "live", attempts.c.dialed_at < dialed_before
                                )
                            )
                        )
                    )
                )
                .mappings()
                .all()
            )
        return [dict(row) for row in rows]

    async def outcome_counts(self, *, ended_since: float) -> list[OutcomeCount]:
        """Attempts counted by campaign, outcome, AMD verdict and whether Twilio took the call,
        for every campaign
        that is running or paused or finished an attempt since ``ended_since``: what the
        metrics report (a campaign long over drops out, so its series do not pile up)."""
        placed = attempts.c.call_sid.is_not(None)
        recent = select(attempts.c.campaign_id).where(attempts.c.ended_at >= ended_since)
        async with self.engine.connect() as db:
            rows = (
                await db.execute(
                    select(
                        attempts.c.campaign_id,
                        attempts.c.outcome,
                        attempts.c.answered_by,
                        placed,
                        func.count(),
                    )
                    .join(campaigns, campaigns.c.id == attempts.c.campaign_id)
                    .where(
                        or_(
                            campaigns.c.status.in_(("running", "paused")),
                            attempts.c.campaign_id.in_(recent),
                        )
                    )
                    .group_by(
                        attempts.c.campaign_id, attempts.c.outcome, attempts.c.answered_by, placed
                    )
                )
            ).all()
        return [OutcomeCount(c, o, a, bool(p), n) for c, o, a, p, n in rows]
