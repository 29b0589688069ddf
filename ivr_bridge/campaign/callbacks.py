"""What Twilio's callbacks and the call itself report, applied to an attempt.

Every callback may come twice, late or out of order (Twilio retries, and status and
answering-machine callbacks travel separately), so each update here is idempotent: a status is
applied only when its ``SequenceNumber`` is newer, a finished attempt stays finished, late news
(an AMD verdict after ``completed``, the callee's choice) re-runs ``settle``, which replaces the
follow-up it scheduled before. A callback that beats the dispatcher's own record of the CallSid
finds its attempt by the id in its URL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ivr_bridge.campaign.outcomes import DECISIONS, Outcome
from ivr_bridge.campaign.schema import attempts, contacts
from ivr_bridge.campaign.settle import attempt_by_sid, record_opt_out, settle

TERMINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
STATUS_ORDER = {"queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3, "answered": 3}


class CallbackUpdates:
    """The callback half of ``CampaignStore``."""

    engine: AsyncEngine

    async def apply_status(
        self,
        call_sid: str,
        status: str,
        *,
        sequence: int | None,
        now: float,
        duration_s: int | None = None,
        error_code: int | None = None,
        answered_by: str | None = None,
        attempt_id: int | None = None,
    ) -> bool:
        """A status callback; False when no attempt has that CallSid (not one of ours).

        ``attempt_id`` (from the callback URL) lets a callback that beats the dispatcher's own
        record of the CallSid find its attempt."""
        status = status.lower()
        async with self.engine.begin() as db:
            row = await _row_for(db, call_sid, attempt_id, now)
            if row is None:
                return False
            values: dict[str, Any] = {}
            if answered_by and not row["answered_by"]:
                values["answered_by"] = answered_by
            if row["state"] == "done":
                if values:
                    await db.execute(
                        update(attempts).where(attempts.c.id == row["id"]).values(**values)
                    )
                    await settle(db, row["id"], now)
                return True  # a duplicate or a late, out-of-order callback: the end stands
            seq = sequence if sequence is not None else -1
            if (
                row["status_seq"] is not None
                and seq <= row["status_seq"]
                and status not in TERMINAL_STATUSES
            ):
                return True
            values["status_seq"] = max(
                seq, row["status_seq"] if row["status_seq"] is not None else -1
            )
            if status in TERMINAL_STATUSES:
                values.update(
                    state="done",
                    call_status=status,
                    ended_at=now,
                    duration_s=duration_s,
                    error_code=error_code,
                )
            elif STATUS_ORDER.get(status, -1) >= STATUS_ORDER.get(row["call_status"] or "", -1):
                values["call_status"] = status
            await db.execute(update(attempts).where(attempts.c.id == row["id"]).values(**values))
            if status in TERMINAL_STATUSES:
                await settle(db, row["id"], now)
        return True

    async def apply_amd(
        self,
        call_sid: str,
        answered_by: str,
        amd_ms: int | None,
        *,
        now: float,
        attempt_id: int | None = None,
    ) -> bool:
        async with self.engine.begin() as db:
            row = await _row_for(db, call_sid, attempt_id, now)
            if row is None:
                return False
            await db.execute(
                update(attempts)
                .where(attempts.c.id == row["id"])
                .values(answered_by=answered_by, amd_ms=amd_ms)
            )
            if row["state"] == "done":
                await settle(db, row["id"], now)
        return True

    async def apply_call_result(
        self,
        call_sid: str,
        *,
        decision: Outcome | None,
        voicemail_left: bool,
        first_audio_ms: int | None,
        now: float,
    ) -> bool:
        """What the call itself found out (the callee's choice, a message left)."""
        if decision is not None and decision not in DECISIONS:
            raise ValueError(f"{decision} is not a callee's decision")
        async with self.engine.begin() as db:
            row = await attempt_by_sid(db, call_sid)
            if row is None:
                return False
            await db.execute(
                update(attempts)
                .where(attempts.c.id == row["id"])
                .values(
                    decision=decision.value if decision else row["decision"],
                    voicemail_left=int(voicemail_left or row["voicemail_left"]),
                    first_audio_ms=first_audio_ms
                    if first_audio_ms is not None
                    else row["first_audio_ms"],
                )
            )
            if decision is Outcome.OPTED_OUT:
                phone = (
                    await db.execute(
                        select(contacts.c.phone).where(contacts.c.id == row["contact_id"])
                    )
                ).scalar_one()
                await record_opt_out(db, phone, f"call {call_sid}", now)
            if row["state"] == "done":
                await settle(db, row["id"], now)
        return True

    async def record_first_audio(
        self, call_sid: str, *, at: float, attempt_id: int | None = None
    ) -> float | None:
        """The bridge sent the call's first audio at ``at`` (epoch seconds): keep dial → first
        bot audio on the attempt (the first report wins) and return it in seconds (None: not
        a campaign call, or its dial time is unknown)."""
        async with self.engine.begin() as db:
            row = await _row_for(db, call_sid, attempt_id, at)
            if row is None or row["dialed_at"] is None or row["dialed_at"] >= at:
                return None  # not ours; or adopted just now, so its dial time is unknown
            delay_s = max(0.0, at - row["dialed_at"])
            if row["first_audio_ms"] is None:
                await db.execute(
                    update(attempts)
                    .where(attempts.c.id == row["id"])
                    .values(first_audio_ms=round(delay_s * 1000))
                )
        return delay_s


async def _row_for(
    db: AsyncConnection, call_sid: str, attempt_id: int | None, now: float
) -> dict[str, Any] | None:
    """The attempt of a callback: by CallSid, or (first callback, before the dispatcher wrote
    the CallSid down) the claimed attempt named in the callback URL, which adopts the sid."""
    row = await attempt_by_sid(db, call_sid)
    if row is None and attempt_id is not None:
        await db.execute(
            update(attempts)
            .where(
                attempts.c.id == attempt_id,
                attempts.c.state == "dialing",
                attempts.c.call_sid.is_(None),
            )
            .values(state="live", call_sid=call_sid, dialed_at=now, call_status="queued")
        )
        # Adopted now (rowcount 1), or the dispatcher recorded the sid between the read above
        # and this update: either way the attempt is found by the sid now.
        row = await attempt_by_sid(db, call_sid)
    return row
