"""Killing the dispatcher mid-campaign and starting it again loses and repeats no contact.

The in-process tests stand a ``BaseException`` in for a crash; this one kills a real
``ivr-bridge serve`` with SIGKILL (no drain, no ``finally``, nothing given back) and starts a
fresh one on the same database, as a crashed pod's replacement would be. The kill comes at the
worst moment, from inside the Twilio stand-in: as it accepts the call to one contact, so that
call is placed and the dispatcher never learns its CallSid. The dead process leaves behind that
call, the rest of its batch claimed but never dialled, and calls still ringing whose callbacks
go to its address, where nobody listens any more (the replacement listens elsewhere, so every
one of them is lost, not only those sent while it started). The new process must adopt the
first call (asking the Calls API, not dialling again), release the claims, settle the ringing
calls from the Calls API and dial the rest: every number is asked for exactly once, and every
contact ends in its outcome.

The callees are busy, ring out, fail or are refused (no media, so it stays quick), and retries
are off, so each contact is exactly one call. The reconciler's waits are shortened through
their settings (production: it looks every 30 s, a claim is presumed dead after 120 s, a call's
callbacks lost once it must have ended); a dispatcher renews its claim before each request, so
short graces are safe.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ivr_bridge.campaign.contacts import Contact
from ivr_bridge.campaign.plan import CampaignPlan
from ivr_bridge.campaign.store import CampaignStore
from ivr_bridge.sim.twilio_rest import Persona, PersonaKind, TwilioRestStandIn
from tests.e2e.conftest import AUTH_TOKEN

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "AC" + "7" * 32
CALLER_ID = "+15005550006"
CAMPAIGN = "restart"
CPS = 8.0
"""About 2 s of dialling before the kill and 2 s after it."""
SPEED = 2.0
"""Stand-in time: a line that rings out (5 s ring timeout) rings 2.5 s, so calls placed just
before the kill are still ringing at it."""
CONTACTS = 30
KILL_AT = 14
"""The 15th contact: the dispatcher claims ten at a time, so 16-20 are claimed, not dialled."""
KINDS: dict[int, PersonaKind] = {7: "invalid", 22: "invalid"}
"""Exceptions to the busy / no-answer / failed rotation: numbers Twilio refuses (21211)."""
ROTATION: tuple[PersonaKind, ...] = ("failed", "no_answer", "busy")
OUTCOMES = {"busy": "busy", "no_answer": "no_answer", "failed": "failed", "invalid": "failed"}
RECONCILER = {"IVR_RECONCILE_EVERY_S": "1", "IVR_CLAIM_GRACE_S": "1", "IVR_LIVE_GRACE_S": "1"}
"""Shortened reconciler waits (production: every 30 s, claim grace 120 s, live grace: the
call's ring timeout + time limit + 60 s)."""
START_LIMIT_S = 40.0
"""A cold start loads the speech recognisers from disk: 18 s was seen, 3.5 s warm."""
OUTCOMES_LIMIT_S = 60.0


def phone(index: int) -> str:
    return f"+1312555{index:04d}"


def kind_of(index: int) -> PersonaKind:
    return KINDS.get(index, ROTATION[index % len(ROTATION)])


PHONES = [phone(index) for index in range(CONTACTS)]
KIND_BY_PHONE = {phone(index): kind_of(index) for index in range(CONTACTS)}
TRIGGER = phone(KILL_AT)
assert KIND_BY_PHONE[TRIGGER] == "busy", "the trigger's call must be placed and end quickly"


@dataclass
class KillSwitch:
    """Kills the bridge the moment the stand-in accepts the call to ``TRIGGER``: the call is
    placed, and the dispatcher that asked for it dies before it hears the CallSid."""

    pid: int | None = None
    fired: asyncio.Event = field(default_factory=asyncio.Event)

    def persona(self, number: str) -> Persona:
        if number == TRIGGER and self.pid is not None and not self.fired.is_set():
            os.kill(self.pid, signal.SIGKILL)
            self.fired.set()
        return Persona(KIND_BY_PHONE.get(number, "busy"))


@dataclass
class Serving:
    proc: asyncio.subprocess.Process
    log: Path

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self) -> None:
        if self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve_env(port: int, db_url: str, api_url: str) -> dict[str, str]:
    """Only this test's settings: no developer's IVR_*, TWILIO_* or LMNT_* leaks in, so the
    bridge speaks through its embedded speech server."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("IVR_", "TWILIO_", "LMNT_"))
    }
    return env | {
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "IVR_PORT": str(port),
        "IVR_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "IVR_CAMPAIGN_DB": db_url,
        "IVR_TWILIO_API_URL": api_url,
        "IVR_DIAL_CPS": str(CPS),
        "IVR_SHUTDOWN_GRACE_S": "2",
        "IVR_LOG_LEVEL": "info",
        **RECONCILER,
    }


async def _spawn(env: dict[str, str], log: Path) -> Serving:
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ivr_bridge", "serve", cwd=REPO, env=env, stdout=out, stderr=out
        )
    return Serving(proc, log)


async def _until_ready(serving: Serving, base: str) -> None:
    """/healthz answers once the bridge listens; its dispatcher starts right after."""
    deadline = time.monotonic() + START_LIMIT_S
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if serving.proc.returncode is not None:
                pytest.fail(f"serve exited {serving.proc.returncode}:\n{serving.tail()}")
            try:
                async with http.get(base + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail(f"serve not ready within {START_LIMIT_S:.0f} s:\n{serving.tail()}")


async def _within(limit_s: float, what: str, awaitable: Awaitable[Any], log: str) -> Any:
    try:
        return await asyncio.wait_for(awaitable, limit_s)
    except TimeoutError:
        pytest.fail(f"{what} within {limit_s:.0f} s; bridge log:\n{log}")


async def _setup_campaign(store: CampaignStore, now: float) -> None:
    plan = CampaignPlan.around_the_clock(
        now, business="Elm Street Clinic", ring_timeout_s=5, max_attempts=1, max_concurrent=100
    )
    await store.create_campaign(
        CAMPAIGN, name="Restart", caller_id=CALLER_ID, app="reminder", plan=plan, now=now
    )
    appointment = datetime.fromtimestamp(now, UTC) + timedelta(days=3)
    await store.add_contacts(
        CAMPAIGN,
        [
            Contact(line, number, f"Ana Patient{line}", appointment, "America/Chicago")
            for line, number in enumerate(PHONES, start=2)
        ],
        now=now,
    )
    await store.set_status(CAMPAIGN, "running")


async def _rows_by_phone(store: CampaignStore) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {number: [] for number in PHONES}
    for row in await store.attempt_rows(CAMPAIGN):
        rows[row["phone"]].append(row)
    return rows


async def _all_outcomes(store: CampaignStore, log: Callable[[], str]) -> dict[str, str]:
    """Poll the store until every contact has its final outcome; fail naming the ones without."""
    deadline = time.monotonic() + OUTCOMES_LIMIT_S
    while True:
        outcomes = await store.contact_outcomes(CAMPAIGN)
        missing = sorted(number for number, outcome in outcomes.items() if outcome is None)
        if not missing:
            return {number: str(outcome) for number, outcome in outcomes.items()}
        if time.monotonic() > deadline:
            rows = await _rows_by_phone(store)
            states = {
                n: [(r["state"], r["call_sid"], r["claimed_by"]) for r in rows[n]] for n in missing
            }
            pytest.fail(
                f"{len(missing)} of {CONTACTS} contacts have no outcome {OUTCOMES_LIMIT_S:.0f} s "
                f"after the restart (lost): {states}\nbridge log:\n{log()}"
            )
        await asyncio.sleep(0.2)


def _assert_kill_left_work_behind(at_kill: dict[str, list[dict[str, Any]]]) -> None:
    """What makes this test prove anything: the dead process had a call placed that it never
    recorded, held claims it never dialled, had calls ringing, and left contacts to dial."""
    states = Counter(row["state"] for rows in at_kill.values() for row in rows)
    [trigger] = at_kill[TRIGGER]
    assert trigger["state"] == "dialing" and trigger["call_sid"] is None, trigger
    claimed = [n for n, rows in at_kill.items() if n != TRIGGER and rows[0]["state"] == "dialing"]
    assert claimed, f"the dead dispatcher held no other claim: {states}"
    assert states["live"] >= 1, f"no call was ringing at the kill: {states}"
    assert states["scheduled"] >= 1, f"nothing was left to dial: {states}"


def _assert_each_number_asked_for_once(standin: TwilioRestStandIn) -> None:
    """Across both processes: one ``calls.create`` per contact (placed, or refused as invalid)."""
    placed = Counter(call.to for call in standin.calls.values())
    refused = Counter(str(form["To"]) for form in standin.refused)
    asked = placed + refused
    repeated = {number: n for number, n in asked.items() if n > 1}
    never = [number for number in PHONES if number not in asked]
    assert not repeated and not never, f"dialled again: {repeated}; never dialled: {never}"
    assert set(refused) == {n for n in PHONES if KIND_BY_PHONE[n] == "invalid"}, refused


def _assert_one_attempt_each_on_its_call(
    rows: dict[str, list[dict[str, Any]]], standin: TwilioRestStandIn
) -> None:
    """Each contact has one finished attempt, bound to the call the stand-in placed for it
    (the trigger's too: adopted from the Calls API, not dialled afresh)."""
    sid_of = {call.to: call.sid for call in standin.calls.values()}
    for number in PHONES:
        [attempt] = rows[number]
        assert attempt["state"] == "done", attempt
        assert attempt["call_sid"] == sid_of.get(number), attempt
        if KIND_BY_PHONE[number] == "invalid":
            assert attempt["error_code"] == 21211, attempt


@pytest.fixture
async def standin_and_switch() -> AsyncIterator[tuple[TwilioRestStandIn, KillSwitch]]:
    switch = KillSwitch()
    standin = TwilioRestStandIn(
        account_sid=ACCOUNT, auth_token=AUTH_TOKEN, personas=switch.persona, speed=SPEED
    )
    await standin.start()
    yield standin, switch
    await standin.close()


@pytest.mark.timeout(180)
async def test_sigkill_mid_campaign_then_a_fresh_bridge_dials_every_contact_exactly_once(
    standin_and_switch: tuple[TwilioRestStandIn, KillSwitch], tmp_path: Path
) -> None:
    standin, switch = standin_and_switch
    now = time.time()
    db_url = f"sqlite:///{tmp_path / 'campaigns.db'}"
    store = await CampaignStore.open(db_url, now=now)
    servings: list[Serving] = []
    try:
        await _setup_campaign(store, now)

        first_port = _free_port()
        first = await _spawn(_serve_env(first_port, db_url, standin.base_url), tmp_path / "1.log")
        servings.append(first)
        switch.pid = first.proc.pid
        await _until_ready(first, f"http://127.0.0.1:{first_port}")
        await _within(START_LIMIT_S, "no dial to the trigger", switch.fired.wait(), first.tail())
        assert await asyncio.wait_for(first.proc.wait(), 10) == -signal.SIGKILL
        at_kill = await _rows_by_phone(store)
        _assert_kill_left_work_behind(at_kill)

        port = _free_port()  # a replacement at another address: the dead one's callbacks are lost
        second = await _spawn(_serve_env(port, db_url, standin.base_url), tmp_path / "2.log")
        servings.append(second)
        await _until_ready(second, f"http://127.0.0.1:{port}")
        outcomes = await _all_outcomes(store, second.tail)
        await standin.settled(timeout_s=30)

        _assert_each_number_asked_for_once(standin)
        assert outcomes == {n: OUTCOMES[KIND_BY_PHONE[n]] for n in PHONES}
        rows = await _rows_by_phone(store)
        _assert_one_attempt_each_on_its_call(rows, standin)
        # What the dead process held or had not reached was dialled by the new one.
        second_worker = f"-{second.proc.pid}"
        for number in PHONES:
            if number != TRIGGER and at_kill[number][0]["state"] in ("scheduled", "dialing"):
                assert rows[number][0]["claimed_by"].endswith(second_worker), rows[number]
    finally:
        for serving in servings:
            await serving.stop()
        await store.close()
