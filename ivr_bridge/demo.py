"""``ivr-bridge demo``: a whole call on a fresh machine, with nothing but embedded defaults.

Starts the bridge (which starts the embedded LMNT-compatible speech server), places one simulated
Twilio call through it with a shipped caller script, and writes what the caller heard.
"""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path

from ivr_bridge.config import load_settings
from ivr_bridge.logs import configure_logging
from ivr_bridge.server.app import start_bridge
from ivr_bridge.sim import load_script, run_call
from ivr_bridge.sim.cli import print_result

DEMO_FLOW = "welcome.yaml"
DEMO_SCRIPT = "listen"


async def run_demo(args: argparse.Namespace) -> int:
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
    bridge = await start_bridge(settings)
    out_dir = Path(args.out)
    try:
        print(f"bridge on {bridge.base_url}, flow {DEMO_FLOW}, caller script {script.name}")
        result = await run_call(
            voice_url=f"{bridge.base_url}/twilio/voice",
            ws_url=None,
            script=script,
            auth_token=token,
            speed=args.speed,
            out_dir=out_dir,
        )
    finally:
        await bridge.stop()
    print_result(result)
    return 0 if result.passed else 1
