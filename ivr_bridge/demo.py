"""``ivr-bridge demo``: a whole call on a fresh machine, with nothing but embedded defaults.

Starts the bridge (which starts the embedded LMNT-compatible speech server), places one simulated
Twilio call through it with a shipped caller script, and writes what the caller heard.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from pathlib import Path

from aiohttp import web

from ivr_bridge.config import load_settings
from ivr_bridge.logs import configure_logging
from ivr_bridge.recognition import warm_up_recognizers
from ivr_bridge.records.pages import standalone_call_page
from ivr_bridge.records.store import FileRecordStore
from ivr_bridge.server.app import start_bridge
from ivr_bridge.sim import load_script, run_call
from ivr_bridge.sim.cli import exit_code, print_result
from ivr_bridge.sim.scenario.hearing import bot_transcriber_or_note

DEMO_FLOW = "support_line.yaml"
DEMO_SCRIPT = "support-line-demo"


async def _balance(request: web.Request) -> web.Response:
    """A stand-in for the bank's balance API the support-line flow looks up."""
    account = request.query.get("account", "")
    if not account.isdigit():
        return web.json_response({"error": "account must be digits"}, status=400)
    cents = int(account) * 7919 % 100_000
    return web.json_response({"balance": f"{cents // 100}.{cents % 100:02d}"})


async def _start_balance_service() -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/balance", _balance)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/balance"


async def run_demo(args: argparse.Namespace) -> int:
    """Run the demo call; 0 when it met its expectations, 1 when not, 2 for bad arguments."""
    if not args.speed > 0:
        print(f"error: --speed must be > 0 (got {args.speed})", file=sys.stderr)
        return 2
    configure_logging("console", os.environ.get("IVR_LOG_LEVEL", "warning"))
    token = secrets.token_hex(16)  # sign everything, as Twilio would
    settings = load_settings(
        host="127.0.0.1",
        port=0,
        flow=DEMO_FLOW,
        twilio_auth_token=token,
        lmnt_api_key=None,
        lmnt_base_url=None,
        public_url=None,
        records="audio",  # the bridge's own record of the call, recording included
        records_dir=Path(args.out) / "records",
    )
    script = load_script(DEMO_SCRIPT)
    # Loading Whisper imports and reads a model: done off the loop, before anything serves. The
    # bridge's recognisers too, as `serve` does: the caller's first answer must not wait on them.
    transcriber = await bot_transcriber_or_note()
    await warm_up_recognizers()
    backend, balance_url = await _start_balance_service()
    previous_url = os.environ.get("IVR_BALANCE_URL")
    os.environ["IVR_BALANCE_URL"] = balance_url  # the flow reads it per call
    bridge = None
    try:
        bridge = await start_bridge(settings)
        print(f"bridge on {bridge.base_url}, flow {DEMO_FLOW}, caller script {script.name}")
        result = await run_call(
            voice_url=f"{bridge.base_url}/twilio/voice",
            ws_url=None,
            script=script,
            auth_token=token,
            speed=args.speed,
            out_dir=Path(args.out),
            transcriber=transcriber,
        )
    finally:
        if bridge is not None:
            await bridge.stop()
        await backend.cleanup()
        if previous_url is None:
            os.environ.pop("IVR_BALANCE_URL", None)
        else:
            os.environ["IVR_BALANCE_URL"] = previous_url
    print_result(result)
    await _write_call_page(Path(args.out), result.call_sid)
    return exit_code(result)


async def _write_call_page(out: Path, call_sid: str) -> None:
    """The bridge's record of the call as the operators' page (timeline, recording inside)."""
    store = FileRecordStore(out / "records")
    record = await store.get(call_sid) if call_sid else None
    if record is None:
        print(f"no call record in {out / 'records'}")
        return
    page = standalone_call_page(record, await store.audio(call_sid))
    path = out / "call-page.html"
    await asyncio.to_thread(path.write_text, page, "utf-8")
    print(f"the bridge's record of the call: {path} (and records/{call_sid}.json)")
