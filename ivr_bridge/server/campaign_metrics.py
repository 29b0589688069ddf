"""Campaign figures on ``/metrics``, read from the campaign database when Prometheus scrapes.

The database is the source of truth for what every attempt came to, and the same on every
replica, so the attempt counts and the rates operators watch (answer rate, the share of
answering-machine verdicts that were ``unknown``) are read from it rather than counted per
process: they survive restarts, agree with ``campaign export``, and never double-count a
callback Twilio sent twice. A scrape reads at most once per ``REFRESH_S`` and waits at most
``READ_TIMEOUT_S``; a database that is away leaves the last figures in place.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import structlog
from sqlalchemy.exc import SQLAlchemyError

from ivr_bridge.campaign.queries import OutcomeCount
from ivr_bridge.campaign.report import CampaignStatus
from ivr_bridge.campaign.store import CampaignStore
from ivr_bridge.metrics import BridgeMetrics

log = structlog.get_logger(__name__)

REFRESH_S = 5.0
READ_TIMEOUT_S = 2.0
RECENT_S = 24 * 3600.0
"""A finished campaign stays on /metrics this long after its last attempt ended."""


def rollups(counts: list[OutcomeCount]) -> dict[str, CampaignStatus]:
    by_campaign: dict[str, CampaignStatus] = {}
    for c in counts:
        status = by_campaign.setdefault(c.campaign, CampaignStatus(c.campaign, "", 0, 0))
        status.attempts_by_outcome[c.outcome or "in_progress"] += c.attempts
        if c.outcome and c.placed:
            status.placed_by_outcome[c.outcome] += c.attempts
        if c.answered_by:
            status.amd[c.answered_by] += c.attempts
    return by_campaign


class CampaignMetrics:
    def __init__(
        self,
        store: CampaignStore,
        metrics: BridgeMetrics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._read_at: float | None = None

    async def refresh(self) -> None:
        now = self._clock()
        if self._read_at is not None and now - self._read_at < REFRESH_S:
            return
        self._read_at = now  # before the await: a second scrape meanwhile does not read too
        try:
            counts = await asyncio.wait_for(
                self._store.outcome_counts(ended_since=now - RECENT_S), READ_TIMEOUT_S
            )
        except (TimeoutError, SQLAlchemyError, OSError) as exc:
            log.warning("campaign metrics not refreshed: database unavailable", error=repr(exc))
            return
        self._publish(rollups(counts))

    def _publish(self, by_campaign: dict[str, CampaignStatus]) -> None:
        m = self._metrics
        for gauge in (m.campaign_attempts, m.campaign_answer_rate, m.campaign_amd_unknown_rate):
            gauge.clear()  # a campaign that dropped out loses its series
        for campaign, status in by_campaign.items():
            outcomes: Counter[str] = status.attempts_by_outcome
            for outcome, n in outcomes.items():
                m.campaign_attempts.labels(campaign=campaign, outcome=outcome).set(n)
            rates = status.rollups()
            if (answer := rates["answer_rate"]) is not None:
                m.campaign_answer_rate.labels(campaign=campaign).set(answer)
            if (unknown := rates["amd_unknown_rate"]) is not None:
                m.campaign_amd_unknown_rate.labels(campaign=campaign).set(unknown)
