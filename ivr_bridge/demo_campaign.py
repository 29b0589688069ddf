"""``ivr-bridge demo campaign``: a 10-contact reminder campaign end to end, offline.

The bridge (with the embedded speech server), a campaign store in a temporary SQLite file, the
dispatcher dialling through twilio-python's async client into the Twilio REST stand-in, and ten
callees played by the simulated caller: people who confirm, reschedule, cancel, opt out or are
the wrong person, an answering machine, a busy line, one that rings out, a failed call and an
invalid number. Prints one row per contact and the timings.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ivr_bridge.campaign.contacts import Contact
from ivr_bridge.campaign.dialer import TwilioDialer
from ivr_bridge.campaign.dispatcher import Dispatcher
from ivr_bridge.campaign.plan import CampaignPlan
from ivr_bridge.campaign.report import campaign_status
from ivr_bridge.campaign.store import CampaignStore
from ivr_bridge.config import load_settings
from ivr_bridge.logs import configure_logging
from ivr_bridge.server.app import start_bridge
from ivr_bridge.sim.scenario.script import CallerScript
from ivr_bridge.sim.twilio_rest import Persona, TwilioRestStandIn

ACCOUNT = "AC" + "d" * 32
CALLER_ID = "+15005550006"


def _person(*keys: str) -> Persona:
    steps: list[Any] = [{"say": "Hello?"}, "wait_for_bot"]
    for key in keys:
        steps += [{"press": key}, "wait_for_bot"]
    return Persona(
        "human",
        ring_ms=2500,
        amd_ms=1800,
        script=CallerScript.model_validate({"steps": [*steps, "hangup"]}),
    )


CALLEES: list[tuple[str, str, Persona, str]] = [
    ("+13125550101", "confirms", _person("1", "1"), "confirmed"),
    ("+13125550102", "reschedules", _person("1", "2"), "rescheduled"),
    ("+13125550103", "cancels", _person("1", "3"), "cancelled"),
    ("+13125550104", "asks to stop the calls", _person("1", "9"), "opted_out"),
    ("+13125550105", "is not the patient", _person("2"), "no_decision"),
    ("+13125550106", "answering machine", Persona("voicemail", ring_ms=4000), "voicemail"),
    ("+13125550107", "busy line", Persona("busy"), "busy"),
    ("+13125550108", "rings out", Persona("no_answer"), "no_answer"),
    ("+13125550109", "call fails", Persona("failed"), "failed"),
    ("+1312555011", "invalid number", Persona("invalid"), "failed"),
]


async def run_campaign_demo(args: argparse.Namespace) -> int:
    if not args.speed > 0:
        print(f"error: --speed must be > 0 (got {args.speed})", file=sys.stderr)
        return 2
    configure_logging("console", os.environ.get("IVR_LOG_LEVEL", "warning"))
    token = secrets.token_hex(16)
    personas = {phone: persona for phone, _, persona, _ in CALLEES}
    with tempfile.TemporaryDirectory(prefix="ivr-demo-campaign-") as folder:
        now = time.time()
        store = await CampaignStore.open(f"sqlite:///{Path(folder) / 'campaigns.db'}", now=now)
        settings = load_settings(
            host="127.0.0.1",
            port=0,
            twilio_auth_token=token,
            lmnt_api_key=None,
            lmnt_base_url=None,
            public_url=None,
        )
        bridge = await start_bridge(settings, campaigns=store)
        standin = TwilioRestStandIn(
            account_sid=ACCOUNT,
            auth_token=token,
            speed=args.speed,
            personas=lambda phone: personas.get(phone, Persona("busy")),
        )
        await standin.start()
        dialer = TwilioDialer(
            ACCOUNT, token, public_url=bridge.base_url, api_base_url=standin.base_url
        )
        started = time.monotonic()
        try:
            await _prepare(store, now)
            print(
                f"bridge {bridge.base_url}, Twilio stand-in {standin.base_url}, "
                f"{len(CALLEES)} contacts at {args.cps:g} call(s)/s, speed {args.speed:g}x"
            )
            dispatcher = Dispatcher(
                store, dialer, worker="demo", account=ACCOUNT, cps=args.cps, poll_s=0.05
            )
            task = asyncio.create_task(dispatcher.run())
            try:
                while await _waiting(store):  # noqa: ASYNC110 - the database is the state
                    await asyncio.sleep(0.1)
                await standin.settled(timeout_s=180)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            rows = await store.attempt_rows("demo")
            _print(rows, standin, time.monotonic() - started)
            print(campaign_status(await store.campaign("demo"), rows).table())
            return _judge(rows)
        finally:
            await dialer.close()
            await standin.close()
            await bridge.stop()
            await store.close()


def _judge(rows: list[dict[str, Any]]) -> int:
    """0 when every contact's first call ended as its persona should (else 1, named)."""
    got = {r["phone"]: r["outcome"] for r in rows if r["number"] == 1}
    wrong = [
        f"{phone} ({what}): {got.get(phone)} instead of {expected}"
        for phone, what, _, expected in CALLEES
        if got.get(phone) != expected
    ]
    for line in wrong:
        print(f"UNEXPECTED {line}", file=sys.stderr)
    if not wrong:
        print(f"\nall {len(CALLEES)} contacts ended as expected")
    return 1 if wrong else 0


async def _prepare(store: CampaignStore, now: float) -> None:
    plan = CampaignPlan.around_the_clock(now, business="Elm Street Clinic", ring_timeout_s=20)
    await store.create_campaign(
        "demo", name="Demo", caller_id=CALLER_ID, app="reminder", plan=plan, now=now
    )
    appointment = datetime.fromtimestamp(now, UTC) + timedelta(days=2)
    contacts = [
        Contact(line, phone, f"Ana {what.split()[0].title()}", appointment, "America/Chicago")
        for line, (phone, what, _, _) in enumerate(CALLEES, start=2)
    ]
    await store.add_contacts("demo", contacts, now=now)
    await store.set_status("demo", "running")


async def _waiting(store: CampaignStore) -> bool:
    rows = await store.attempt_rows("demo")
    return any(r["number"] == 1 and r["state"] in ("scheduled", "dialing") for r in rows)


def _print(rows: list[dict[str, Any]], standin: TwilioRestStandIn, wall_s: float) -> None:
    what = {phone: text for phone, text, _, _ in CALLEES}
    firsts = [r for r in rows if r["number"] == 1]
    print(f"\n{'callee':<14} {'persona':<24} {'status':<11} {'answered by':<17} outcome")
    for r in firsts:
        print(
            f"{r['phone']:<14} {what.get(r['phone'], ''):<24} {r['call_status'] or '-':<11} "
            f"{r['answered_by'] or '-':<17} {r['outcome']}"
        )
    retries = [r["phone"] for r in rows if r["number"] == 2]
    if retries:
        print(f"tried again later in the window: {', '.join(retries)}")
    first_audio = [
        c.result.recorder.utterances[0].start_ms
        for c in standin.calls.values()
        if c.result is not None and c.result.recorder.utterances
    ]
    if first_audio:
        print(
            f"\nanswer → first bot audio (call time): p50 {statistics.median(first_audio):.0f} ms, "
            f"max {max(first_audio):.0f} ms over {len(first_audio)} answered calls"
        )
    dial_to_audio = sorted(r["first_audio_ms"] for r in rows if r["first_audio_ms"] is not None)
    if dial_to_audio:
        print(
            f"dial → first bot audio (the bridge's figure, ringing included): p50 "
            f"{statistics.median(dial_to_audio):.0f} ms, max {dial_to_audio[-1]:.0f} ms"
        )
    print(f"{len(standin.create_times)} calls placed in {wall_s:.1f} s\n")
