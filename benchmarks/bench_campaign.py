"""Outbound throughput and latency: contacts per minute, and dial → first bot audio.

Two runs against the Twilio REST stand-in, with the real bridge and the embedded speech server:

- ``pace``: N contacts at ``--cps`` (1 by default, Twilio's default account rate), half of them
  people who answer and confirm, the others busy: contacts per minute, and dial → first bot
  audio (ringing excluded) p50/p95 for the answered calls, at real time (speed 1).
- ``max``: N contacts (default 1,000) with the stand-in refusing nothing and answering at once
  as a failed call, ``--cps`` 1,000 (far above what the dispatcher can send): what one
  dispatcher can dial per minute through twilio-python's async client and the database.

    python benchmarks/bench_campaign.py pace --contacts 30
    python benchmarks/bench_campaign.py max --contacts 1000 [--db postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ivr_bridge.campaign.contacts import Contact
from ivr_bridge.campaign.dialer import TwilioDialer
from ivr_bridge.campaign.dispatcher import Dispatcher
from ivr_bridge.campaign.plan import CampaignPlan
from ivr_bridge.campaign.store import CampaignStore
from ivr_bridge.config import load_settings
from ivr_bridge.logs import configure_logging
from ivr_bridge.server.app import start_bridge
from ivr_bridge.sim.scenario.script import CallerScript
from ivr_bridge.sim.twilio_rest import Persona, TwilioRestStandIn

ACCOUNT = "AC" + "b" * 32
RING_MS = 2000
CONFIRMS = Persona(
    "human",
    ring_ms=RING_MS,
    amd_ms=1800,
    script=CallerScript.model_validate(
        {
            "steps": [
                {"say": "Hello?"},
                "wait_for_bot",
                {"press": "1"},
                "wait_for_bot",
                {"press": "1"},
                "wait_for_bot",
                "hangup",
            ]
        }
    ),
)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def run(args: argparse.Namespace) -> None:
    configure_logging("console", "error")
    token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as folder:
        now = time.time()
        url = args.db or f"sqlite:///{Path(folder) / 'bench.db'}"
        store = await CampaignStore.open(url, now=now)
        bridge = None
        if args.mode == "pace":
            settings = load_settings(
                host="127.0.0.1",
                port=0,
                twilio_auth_token=token,
                lmnt_api_key=None,
                lmnt_base_url=None,
                public_url=None,
            )
            bridge = await start_bridge(settings, campaigns=store)
        phones = [f"+1312{n:07d}" for n in range(args.contacts)]

        def persona(phone: str) -> Persona:
            if args.mode == "max":
                return Persona("failed")
            return CONFIRMS if int(phone[-1]) % 2 == 0 else Persona("busy")

        standin = TwilioRestStandIn(account_sid=ACCOUNT, auth_token=token, personas=persona)
        await standin.start()
        public = bridge.base_url if bridge else "http://127.0.0.1:9"
        dialer = TwilioDialer(ACCOUNT, token, public_url=public, api_base_url=standin.base_url)
        name = f"bench{secrets.token_hex(3)}"
        await store.create_campaign(
            name,
            name=name,
            caller_id="+15005550006",
            app="reminder",
            now=now,
            plan=CampaignPlan.around_the_clock(now, max_concurrent=10_000),
        )
        appointment = datetime.now(UTC) + timedelta(days=3)
        await store.add_contacts(
            name,
            [
                Contact(i + 2, p, "Ana Bench", appointment, "America/Chicago")
                for i, p in enumerate(phones)
            ],
            now=now,
        )
        await store.set_status(name, "running")
        dispatcher = Dispatcher(
            store, dialer, worker="bench", account=ACCOUNT, cps=args.cps, poll_s=0.01, batch=50
        )
        started = time.monotonic()
        task = asyncio.create_task(dispatcher.run())
        try:
            while len(standin.create_times) < len(phones):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            dial_s = standin.create_times[-1] - standin.create_times[0]
            wall_s = time.monotonic() - started
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await standin.settled(timeout_s=600)
        await dialer.close()
        await standin.close()
        if bridge is not None:
            await bridge.stop()
        own = [
            r["first_audio_ms"] - RING_MS
            for r in await store.attempt_rows(name)
            if r["first_audio_ms"] is not None
        ]
        await store.close()
    per_minute = 60 * (len(phones) - 1) / dial_s if dial_s > 0 else float("inf")
    gaps = [b - a for a, b in zip(standin.create_times, standin.create_times[1:], strict=False)]
    print(
        f"mode {args.mode}: {len(phones)} contacts dialled in {dial_s:.2f} s "
        f"(first to last request; {wall_s:.2f} s from start): {per_minute:.0f} contacts/min; "
        f"smallest gap between requests {min(gaps) * 1000:.1f} ms (pace {args.cps:g}/s)"
    )
    latencies = [
        c.dial_to_first_audio_s() for c in standin.calls.values() if c.persona.kind == "human"
    ]
    measured = [x - RING_MS / 1000 for x in latencies if x is not None]
    if measured:
        print(
            f"dial → first bot audio, ringing ({RING_MS} ms) excluded, {len(measured)} calls: "
            f"p50 {statistics.median(measured) * 1000:.0f} ms, "
            f"p95 {pct(measured, 0.95) * 1000:.0f} ms, max {max(measured) * 1000:.0f} ms"
            + (
                f" ({len(latencies) - len(measured)} inconclusive)"
                if len(measured) < len(latencies)
                else ""
            )
        )
    if own:
        print(
            f"the bridge's own figure (dial request → first media frame sent, as "
            f"ivr_campaign_dial_to_first_audio_seconds), ringing excluded, {len(own)} calls: "
            f"p50 {statistics.median(own):.0f} ms, p95 {pct(own, 0.95):.0f} ms, "
            f"max {max(own):.0f} ms"
        )
    outcomes: dict[str, Any] = {}
    for call in standin.calls.values():
        outcomes[call.status] = outcomes.get(call.status, 0) + 1
    print(f"final statuses at the stand-in: {outcomes}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["pace", "max"])
    parser.add_argument("--contacts", type=int, default=None)
    parser.add_argument("--cps", type=float, default=None)
    parser.add_argument("--db", default=None, help="database URL (default: a temporary SQLite)")
    args = parser.parse_args()
    if args.contacts is None:
        args.contacts = 30 if args.mode == "pace" else 1000
    if args.cps is None:
        args.cps = 1.0 if args.mode == "pace" else 1000.0
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
