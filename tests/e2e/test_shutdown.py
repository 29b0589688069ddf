"""SIGTERM on a real `ivr-bridge serve` process: no new calls, active calls finish, bounded wait."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys

import aiohttp

from ivr_bridge.telephony.twilio.signature import sign_request, websocket_url
from tests.e2e.twilio_peer import STREAM_SID, connected, new_call_sid, start

TOKEN = "shutdown-test-token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _start_server(grace_s: float) -> tuple[asyncio.subprocess.Process, str]:
    port = _free_port()
    env = {
        **os.environ,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "IVR_PORT": str(port),
        "IVR_SHUTDOWN_GRACE_S": str(grace_s),
        "IVR_LOG_LEVEL": "warning",
    }
    for name in ("LMNT_API_KEY", "LMNT_BASE_URL", "IVR_PUBLIC_URL"):
        env.pop(name, None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ivr_bridge", "serve", env=env, stderr=asyncio.subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    # Startup loads the recognisers and the neural voice in two synthesis workers: seconds on
    # a loaded machine. A minute before calling it broken.
    deadline = asyncio.get_running_loop().time() + 60
    async with aiohttp.ClientSession() as http:
        while asyncio.get_running_loop().time() < deadline and proc.returncode is None:
            try:
                async with http.get(base + "/healthz") as resp:
                    if resp.status == 200:
                        return proc, base
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
    proc.kill()
    raise AssertionError("server did not start")


async def _status_becomes(http: aiohttp.ClientSession, base: str, status: str) -> bool:
    """The server handles SIGTERM on its own schedule: poll, with a generous real-time ceiling."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while loop.time() < deadline:
        async with http.get(base + "/healthz") as resp:
            if (await resp.json())["status"] == status:
                return True
        await asyncio.sleep(0.05)
    return False


async def _open_call(http: aiohttp.ClientSession, base: str) -> aiohttp.ClientWebSocketResponse:
    url = websocket_url(base, "/twilio/media")
    ws = await http.ws_connect(url, headers={"X-Twilio-Signature": sign_request(TOKEN, url)})
    await ws.send_str(connected())
    await ws.send_str(start({"flow": "welcome.yaml"}, call_sid=new_call_sid(), auth_token=TOKEN))
    first = json.loads((await ws.receive()).data)
    assert first["event"] == "media"
    return ws


async def test_sigterm_drains_active_calls_and_refuses_new_ones() -> None:
    proc, base = await _start_server(grace_s=30)
    async with aiohttp.ClientSession() as http:
        ws = await _open_call(http, base)
        proc.send_signal(signal.SIGTERM)
        assert await _status_becomes(http, base, "draining")
        form = {"CallSid": "CA1"}
        url = base + "/twilio/voice"
        headers = {"X-Twilio-Signature": sign_request(TOKEN, url, form)}
        async with http.post(url, data=form, headers=headers) as resp:
            assert resp.status == 503
        # The active call goes on to the end of its greeting; echo marks as Twilio would.
        audio_frames = 1
        async for msg in ws:
            frame = json.loads(msg.data)
            if frame["event"] == "media":
                audio_frames += 1
            elif frame["event"] == "mark":
                echo = {"event": "mark", "streamSid": STREAM_SID, "sequenceNumber": "9"}
                await ws.send_str(json.dumps({**echo, "mark": frame["mark"]}))
        assert audio_frames > 30, "the call was cut instead of finishing its greeting"
    assert await asyncio.wait_for(proc.wait(), 15) == 0


async def test_shutdown_grace_is_bounded() -> None:
    """A call that never lets its prompt finish (no mark echoes) and a socket that never starts
    a call must not hold the process past its grace plus a small margin (it took 25 s with a
    15 s grace)."""
    proc, base = await _start_server(grace_s=2)
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http:
        ws = await _open_call(http, base)  # never echoes a mark: the call would run on
        url = websocket_url(base, "/twilio/media")
        idle = await http.ws_connect(url, headers={"X-Twilio-Signature": sign_request(TOKEN, url)})
        await idle.send_str(connected())  # no start, ever
        proc.send_signal(signal.SIGTERM)
        sent = loop.time()
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        took = loop.time() - sent
        await ws.close()
        await idle.close()
    # grace + waiting for Twilio's after-stream request (at most the grace) + teardown floor
    assert took <= 2 + 2 + 3, f"exit {took:.1f} s after SIGTERM with a 2 s grace"
