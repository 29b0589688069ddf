"""Soak benchmark (not a test): many calls through a real `ivr-bridge serve`, resources tracked.

Starts `ivr-bridge serve` (embedded speech server, signed requests) as its own process, places
``--calls`` calls ``--concurrency`` at a time, and ends a share of them the way callers do (``stop``
then close, mid-prompt); the rest run until the bridge ends them (marks echoed at once, so the
flow plays through fast). Every ``--every`` calls, and once everything settled, it prints what
the bridge's /metrics says: open fds, asyncio tasks, RSS, open speech sessions, active calls.
A leak shows as a column that only grows.

    .venv/bin/python benchmarks/soak.py --calls 1000 --caller-share 0.5 --concurrency 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import sys
import time

import aiohttp

from ivr_bridge.server.stream_tokens import TOKEN_PARAMETER, derive_key, issue
from ivr_bridge.telephony.twilio.signature import sign_request, websocket_url

TOKEN = "soak-auth-token-" + secrets.token_hex(8)
GAUGES = (
    "process_open_fds",
    "ivr_asyncio_tasks",
    "process_resident_memory_bytes",
    "ivr_speech_sessions_open",
    "ivr_active_calls",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _start_server(flow: str) -> tuple[asyncio.subprocess.Process, str]:
    port = _free_port()
    env = {
        **os.environ,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "IVR_PORT": str(port),
        "IVR_FLOW": flow,
        "IVR_LOG_LEVEL": "error",
    }
    for name in ("LMNT_API_KEY", "LMNT_BASE_URL", "IVR_PUBLIC_URL"):
        env.pop(name, None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ivr_bridge", "serve", env=env, stdout=asyncio.subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            try:
                async with http.get(base + "/healthz") as resp:
                    if resp.status == 200:
                        return proc, base
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
    proc.kill()
    raise SystemExit("the bridge did not start")


def _frame(event: str, stream_sid: str, seq: int, **body: object) -> str:
    return json.dumps({"event": event, "sequenceNumber": str(seq), "streamSid": stream_sid, **body})


async def one_call(http: aiohttp.ClientSession, base: str, *, caller_hangs_up: bool) -> str:
    """One call; returns how it ended: ``caller`` or ``bridge``."""
    call_sid, stream_sid = "CA" + secrets.token_hex(16), "MZ" + secrets.token_hex(16)
    url = websocket_url(base, "/twilio/media")
    async with http.ws_connect(url, headers={"X-Twilio-Signature": sign_request(TOKEN, url)}) as ws:
        await ws.send_str(
            json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        )
        start = {
            "accountSid": "AC" + "0" * 32,
            "streamSid": stream_sid,
            "callSid": call_sid,
            "tracks": ["inbound"],
            "customParameters": {},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        parameters = {TOKEN_PARAMETER: issue(derive_key(TOKEN), call_sid, {})}
        start["customParameters"] = parameters  # what the voice webhook would have handed it
        await ws.send_str(_frame("start", stream_sid, 1, start=start))
        seq = 1
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            if frame["event"] == "media" and caller_hangs_up:
                stop = {"accountSid": start["accountSid"], "callSid": call_sid}
                await ws.send_str(_frame("stop", stream_sid, seq + 1, stop=stop))
                return "caller"
            if frame["event"] == "mark":
                seq += 1
                await ws.send_str(_frame("mark", stream_sid, seq, mark=frame["mark"]))
        return "bridge"


async def scrape(http: aiohttp.ClientSession, base: str) -> dict[str, float]:
    async with http.get(base + "/metrics") as resp:
        text = await resp.text()
    values: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in GAUGES:
            values[name] = float(value)
    return values


def _row(calls: int, values: dict[str, float]) -> str:
    return (
        f"{calls:>6} {values.get('process_open_fds', 0):>6.0f} "
        f"{values.get('ivr_asyncio_tasks', 0):>6.0f} "
        f"{values.get('process_resident_memory_bytes', 0) / 2**20:>8.1f} "
        f"{values.get('ivr_speech_sessions_open', 0):>9.0f} "
        f"{values.get('ivr_active_calls', 0):>7.0f}"
    )


async def settle(http: aiohttp.ClientSession, base: str, limit_s: float = 20.0) -> dict[str, float]:
    deadline = time.monotonic() + limit_s
    values = await scrape(http, base)
    while time.monotonic() < deadline and (
        values.get("ivr_active_calls") or values.get("ivr_speech_sessions_open")
    ):
        await asyncio.sleep(0.2)
        values = await scrape(http, base)
    return values


async def main(args: argparse.Namespace) -> int:
    proc, base = await _start_server(args.flow)
    endings = {"caller": 0, "bridge": 0}
    try:
        async with aiohttp.ClientSession() as http:
            print(
                f"{'calls':>6} {'fds':>6} {'tasks':>6} {'RSS MiB':>8} {'speech':>9} {'active':>7}"
            )
            baseline = await settle(http, base)
            print(_row(0, baseline), flush=True)
            started = time.monotonic()
            placed = 0
            while placed < args.calls:
                batch = min(args.concurrency, args.calls - placed)
                # Spread the caller's hang-ups evenly: call k hangs up when the share crosses k.
                hang_ups = [
                    int((placed + i + 1) * args.caller_share)
                    > int((placed + i) * args.caller_share)
                    for i in range(batch)
                ]
                results = await asyncio.gather(
                    *(one_call(http, base, caller_hangs_up=h) for h in hang_ups)
                )
                for ending in results:
                    endings[ending] += 1
                before = placed
                placed += batch
                if placed // args.every != before // args.every:
                    print(_row(placed, await scrape(http, base)), flush=True)
            final = await settle(http, base)
            print(_row(placed, final) + "   (settled)")
            print(
                f"{placed} calls in {time.monotonic() - started:.0f} s: "
                f"{endings['caller']} ended by the caller, {endings['bridge']} by the bridge"
            )
            leaked = final.get("ivr_speech_sessions_open", 0) or final.get("ivr_active_calls", 0)
            return 1 if leaked else 0
    finally:
        proc.terminate()
        await proc.wait()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument(
        "--caller-share", type=float, default=0.5, help="share of calls the caller ends (0-1)"
    )
    parser.add_argument("--every", type=int, default=100, help="print a row every N calls")
    parser.add_argument("--flow", default="welcome.yaml")
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse_args())))
