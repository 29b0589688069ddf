"""``ivr-bridge demo``: a whole call on a fresh machine, with nothing but embedded defaults.

Starts the bridge (which starts the embedded LMNT-compatible speech server), places one simulated
Twilio call through it with a shipped caller script, and writes what the caller heard.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from aiohttp import web

from ivr_bridge.config import load_settings
from ivr_bridge.logs import configure_logging
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
    )
    script = load_script(DEMO_SCRIPT)
    # Loading Whisper imports and reads a model: done off the loop, before anything serves.
    transcriber = await bot_transcriber_or_note()
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
    return exit_code(result)
