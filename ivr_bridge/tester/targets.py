"""What a suite calls: our own bridge started for ``flow`` targets, or someone else's server.

For ``flow`` targets the tester runs the real thing a caller would reach: the bridge with the
embedded speech server, its flows loaded from the suite's ``flows_dir`` (a broken flow stops the
run before any call, naming file and line), every request signed with a fresh auth token. Flows
that call an HTTP backend get a stand-in serving the suite's ``backend`` JSON, and the suite's
``env`` (with ``${backend}`` replaced by its URL) is set for the run and restored after.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from ivr_bridge.call.transcripts import BotLine
from ivr_bridge.config import load_settings
from ivr_bridge.server.app import start_bridge
from ivr_bridge.tester.dialing import Dialler, open_dialler
from ivr_bridge.tester.suite import LoadedSuite, Target


@dataclass(frozen=True, slots=True)
class CallTarget:
    """Resolved endpoints for one call."""

    voice_url: str | None
    ws_url: str | None
    auth_token: str | None


@dataclass(frozen=True, slots=True)
class Targets:
    bridge_url: str | None
    """Our bridge's base URL (``flow`` targets), None when the suite calls none."""
    auth_token: str | None
    dialler: Dialler | None = None
    """Places ``dial`` targets' calls over Twilio (None when the suite dials none)."""
    bridge_lines: Callable[[str], list[BotLine]] | None = None
    """What our bridge says it said on a call (``flow`` targets), by CallSid."""

    def resolve(self, target: Target) -> CallTarget:
        if target.flow is not None:
            if self.bridge_url is None:
                raise RuntimeError("a flow target needs the tester's bridge")
            query = urlencode({"flow": target.flow, **target.query})
            return CallTarget(f"{self.bridge_url}/twilio/voice?{query}", None, self.auth_token)
        if target.url is not None:
            return CallTarget(target.url, None, self.auth_token)
        return CallTarget(None, target.ws_url, self.auth_token)


@asynccontextmanager
async def open_targets(loaded: LoadedSuite, auth_token: str | None) -> AsyncIterator[Targets]:
    """Start what the suite's targets need; yield how to reach every target."""
    async with AsyncExitStack() as stack:
        dialler = None
        if loaded.dials():
            public = os.environ.get("IVR_TESTER_PUBLIC_URL") or None
            dialler = await stack.enter_async_context(open_dialler(public))
        targets = await stack.enter_async_context(_bridge_targets(loaded, auth_token))
        yield replace(targets, dialler=dialler)


@asynccontextmanager
async def _bridge_targets(loaded: LoadedSuite, auth_token: str | None) -> AsyncIterator[Targets]:
    if not loaded.needs_bridge():
        yield Targets(None, auth_token)
        return
    token = secrets.token_hex(16)  # our own bridge: sign everything, as Twilio would
    bridge_settings = loaded.suite.bridge
    backend = await _start_backend(bridge_settings.backend) if bridge_settings.backend else None
    env = {
        name: value.replace("${backend}", backend[1] if backend else "")
        for name, value in bridge_settings.env.items()
    }
    previous = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    bridge = None
    try:
        first_flow = next(s.target.flow for s in loaded.scenarios if s.target.flow)
        settings = load_settings(
            host="127.0.0.1",
            port=0,
            flows_dir=loaded.flows_dir,
            flow=first_flow,
            voice=bridge_settings.voice,
            twilio_auth_token=token,
            lmnt_api_key=None,
            lmnt_base_url=None,
            public_url=None,
        )
        bridge = await start_bridge(settings)
        yield Targets(bridge.base_url, token, bridge_lines=bridge.state.transcripts.lines)
    finally:
        if bridge is not None:
            await bridge.stop()
        if backend is not None:
            await backend[0].cleanup()
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def _start_backend(routes: dict[str, dict[str, Any]]) -> tuple[web.AppRunner, str]:
    """A loopback HTTP server answering each path with its JSON (any query string)."""
    app = web.Application()
    for path, body in routes.items():

        async def answer(request: web.Request, body: dict[str, Any] = body) -> web.Response:
            return web.json_response(body)

        app.router.add_get(path if path.startswith("/") else f"/{path}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"
