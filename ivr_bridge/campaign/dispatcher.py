"""The dispatcher: takes due attempts from the database and dials them, at the account's pace.

One runs per replica; they share the work through the database (``CampaignStore.claim_due``)
and the pace through one row (``reserve_dial_slot``), so two replicas dial no faster than one
would and never the same attempt. Everything is checked again just before the request goes
out, because minutes can pass between scheduling and dialling: the callee's calling hours, the
round's end (``expired_window`` rather than a late call), and the opt-out list (an opt-out said
on another campaign's call a second ago counts).

The reconciler covers what a crash or a lost callback leaves behind: an attempt claimed but
never confirmed placed is looked up in the Calls API (placed: adopted; not placed: dialled
again), and a call with no final status after its time limit is fetched and settled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

import structlog

from ivr_bridge.campaign.callbacks import TERMINAL_STATUSES
from ivr_bridge.campaign.dialer import Dialed, Dialer, DialRequest
from ivr_bridge.campaign.outcomes import Outcome
from ivr_bridge.campaign.plan import CampaignPlan
from ivr_bridge.campaign.store import CampaignStore, Claimed

log = structlog.get_logger("ivr_bridge.campaign")

RETRY_REFUSED_S = 30.0
"""A dial Twilio refused for now (429, 5xx, network) goes again this much later."""
CLAIM_GRACE_S = 120.0
"""A claim older than this with no CallSid belongs to a dispatcher that died mid-dial (a
dispatcher renews its claim just before each request, so a live one never looks like that)."""
LIVE_MARGIN_S = 60.0
"""A placed call with no final status this long after it must have ended (ring timeout + time
limit) lost its last callback."""
SHORTEST_LIVE_S = 5 + 30 + LIVE_MARGIN_S
"""The shortest ring timeout and time limit a plan allows, and the margin."""
RECONCILE_EVERY_S = 30.0
ERROR_BACKOFF_MAX_S = 30.0
"""After a failed step (database unreachable), wait up to this long before the next."""
PACE_MARGIN = 0.05
"""Requests are spaced 5 % wider than ``1/cps``: they reach Twilio with some jitter, and two
arriving 976 ms apart at 1 CPS were measured when spaced exactly 1 s."""


class DialPacer(Protocol):
    async def reserve_dial_slot(self, account: str, *, cps: float, now: float) -> float:
        """The instant a dial may be sent (``now`` or later), at most ``cps`` a second for the
        account across everyone sharing this pacer."""
        ...


class Dispatcher:
    def __init__(
        self,
        store: CampaignStore,
        dialer: Dialer,
        *,
        worker: str,
        account: str,
        cps: float = 1.0,
        poll_s: float = 1.0,
        batch: int = 10,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_result: Callable[[str], None] | None = None,
        reconcile_every_s: float = RECONCILE_EVERY_S,
        claim_grace_s: float = CLAIM_GRACE_S,
        live_grace_s: float | None = None,
        pacer: DialPacer | None = None,
    ) -> None:
        """``live_grace_s``: how long after dialling a call with no final status is looked up
        (None: its ring timeout + time limit + ``LIVE_MARGIN_S``); ``pacer``: who spaces the
        dials (None: the campaign database, shared by every dispatcher on it)."""
        self.store = store
        self.pacer: DialPacer = pacer or store
        self.reconcile_every_s = reconcile_every_s
        self.claim_grace_s = claim_grace_s
        self.live_grace_s = live_grace_s
        self.dialer = dialer
        self.worker = worker
        self.account = account
        self.cps = cps
        self.poll_s = poll_s
        self.batch = batch
        self.clock = clock
        self.sleep = sleep
        self.dialled = 0
        self.on_result = on_result or (lambda result: None)
        """Told what became of each due attempt (``placed``, ``retry``, ``failed``, ...)."""

    async def run(self) -> None:
        """Dial until cancelled; look for what a crash or a lost callback left, now and then."""
        log.info("dispatcher_started", worker=self.worker, cps=self.cps)
        next_reconcile = self.clock()
        failures = 0
        while True:
            try:
                if self.clock() >= next_reconcile:
                    await self.reconcile()
                    next_reconcile = self.clock() + self.reconcile_every_s
                busy = await self.step()
                failures = 0
            except Exception as exc:  # the database or Twilio away for a moment: keep going
                # What this batch had claimed is given back by the reconciler after its grace.
                failures += 1
                log.warning("dispatcher_step_failed", error=repr(exc)[:300], failures=failures)
                await self.sleep(min(ERROR_BACKOFF_MAX_S, self.poll_s * 2**failures))
                continue
            if not busy:
                await self.sleep(self.poll_s)

    async def reconcile(self) -> int:
        """Settle attempts a dead dispatcher or a lost callback left open; returns how many.

        Claimed but never recorded as placed: the Calls API says whether the call went out
        (then the attempt adopts it, so it is not dialled twice) or not (then it is due again).
        Placed with no final status after the call must have ended: the call is fetched and its
        status applied."""
        now = self.clock()
        shortest = self.live_grace_s if self.live_grace_s is not None else SHORTEST_LIVE_S
        stale = await self.store.stale(
            claimed_before=now - self.claim_grace_s, dialed_before=now - shortest
        )
        stale = [row for row in stale if row["state"] == "dialing" or self._overdue(row, now)]
        for row in stale:
            if row["state"] == "dialing":
                since = (row["claimed_at"] or now) - 5.0
                found = await self.dialer.find_calls(row["phone"], row["caller_id"], since=since)
                if not found:
                    if await self.store.release(row["id"], at=now, claimed_at=row["claimed_at"]):
                        log.warning(
                            "reconcile: claimed call never placed; dialling again",
                            attempt=row["id"],
                        )
                    continue
                call_sid = found[0].call_sid
                log.warning(
                    "reconcile: adopting a call placed before a crash",
                    attempt=row["id"],
                    call_sid=call_sid,
                )
                await self.store.mark_dialed(row["id"], call_sid, now=found[0].created_at)
            else:
                call_sid = row["call_sid"]
            placed = await self.dialer.fetch(call_sid)
            if placed is not None and placed.status in TERMINAL_STATUSES:
                await self.store.apply_status(
                    call_sid,
                    placed.status,
                    sequence=None,
                    now=now,
                    duration_s=placed.duration_s,
                    answered_by=placed.answered_by,
                )
        return len(stale)

    def _overdue(self, row: dict[str, object], now: float) -> bool:
        if self.live_grace_s is not None:
            return True  # the query already applied it
        plan = CampaignPlan.model_validate_json(str(row["settings"]))
        dialed_at = row["dialed_at"]
        assert isinstance(dialed_at, float | int)
        return now - dialed_at > plan.ring_timeout_s + plan.time_limit_s + LIVE_MARGIN_S

    async def step(self) -> int:
        """Claim one batch of due attempts and dial them; returns how many were claimed."""
        claimed = await self.store.claim_due(self.worker, now=self.clock(), limit=self.batch)
        for index, attempt in enumerate(claimed):
            try:
                await self._dial(attempt)
            except asyncio.CancelledError:
                # Stopping: what is claimed and not dialled goes back, due at once.
                for rest in claimed[index:]:
                    await asyncio.shield(self.store.release(rest.attempt_id, at=self.clock()))
                raise
        return len(claimed)

    async def _dial(self, attempt: Claimed) -> None:
        slot = await self.pacer.reserve_dial_slot(
            self.account, cps=self.cps / (1 + PACE_MARGIN), now=self.clock()
        )
        wait = slot - self.clock()
        if wait > 0:
            await self.sleep(wait)
        now = self.clock()
        verdict = await self._still_callable(attempt, now)
        if verdict is not None:
            self.on_result(verdict)
            return
        requested_at = self.clock()  # dial → first audio counts from the request
        if not await self.store.renew_claim(attempt.attempt_id, self.worker, now=requested_at):
            self.on_result("claim_lost")
            log.warning(
                "claim lost before dialling: another dispatcher has it", attempt=attempt.attempt_id
            )
            return
        result = await self.dialer.dial(
            DialRequest(
                to=attempt.phone,
                from_=attempt.caller_id,
                attempt_id=attempt.attempt_id,
                app=attempt.app,
                ring_timeout_s=attempt.plan.ring_timeout_s,
                time_limit_s=attempt.plan.time_limit_s,
                parameters={"script": attempt.plan.script, "language": attempt.language},
            )
        )
        if isinstance(result, Dialed):
            self.dialled += 1
            self.on_result("placed")
            await self.store.mark_dialed(attempt.attempt_id, result.call_sid, now=requested_at)
            log.info("dialled", attempt=attempt.attempt_id, call_sid=result.call_sid)
        elif result.retry:
            self.on_result("retry")
            log.warning("dial_refused_for_now", attempt=attempt.attempt_id, reason=result.message)
            await self.store.release(attempt.attempt_id, at=self.clock() + RETRY_REFUSED_S)
        else:
            self.on_result("failed")
            log.warning(
                "dial_failed", attempt=attempt.attempt_id, code=result.code, reason=result.message
            )
            await self.store.finish_undialled(
                attempt.attempt_id, Outcome.FAILED, now=self.clock(), error_code=result.code
            )

    async def _still_callable(self, attempt: Claimed, now: float) -> str | None:
        """None when the call may go now; otherwise why not (the attempt is dealt with)."""
        if await self.store.opted_out(attempt.phone):
            await self.store.finish_undialled(attempt.attempt_id, Outcome.OPTED_OUT, now=now)
            return "opted_out"
        if now > attempt.not_after:
            await self.store.finish_undialled(attempt.attempt_id, Outcome.EXPIRED_WINDOW, now=now)
            return "expired_window"
        hours, zone = attempt.plan.hours(), ZoneInfo(attempt.timezone)
        when = datetime.fromtimestamp(now, UTC)
        if not hours.allows(when, zone):
            later = hours.next_open(when, zone).timestamp()
            if later > attempt.not_after:
                await self.store.finish_undialled(
                    attempt.attempt_id, Outcome.EXPIRED_WINDOW, now=now
                )
                return "expired_window"
            await self.store.release(attempt.attempt_id, at=later)
            return "outside_hours"
        return None
