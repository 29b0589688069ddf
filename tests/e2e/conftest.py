"""A real bridge and a real speech server, in-process on loopback ports."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ivr_bridge.config import Settings
from ivr_bridge.server.app import RunningBridge, start_bridge
from ivr_bridge.speechserver.app import start_speech_server

FLOWS_DIR = Path(__file__).resolve().parents[2] / "flows"
AUTH_TOKEN = "test-auth-token-0123456789abcdef"


@pytest.fixture(autouse=True)
def _no_speech_server_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """SpeechServerConfig() reads IVR_SPEECH_*: a developer's settings must not change results."""
    for name in list(os.environ):
        if name.upper().startswith("IVR_SPEECH_"):
            monkeypatch.delenv(name)


@pytest.fixture
async def speech_server() -> AsyncIterator[Any]:
    server = await start_speech_server(host="127.0.0.1", port=0)
    server.config.realtime_factor = 0.0
    yield server
    await server.stop()


@pytest.fixture
async def make_bridge(speech_server: Any) -> AsyncIterator[Callable[..., Any]]:
    bridges: list[RunningBridge] = []

    async def factory(
        *,
        apps: dict[str, Any] | None = None,
        default_app: str | None = None,
        campaigns: Any = None,
        **overrides: Any,
    ) -> RunningBridge:
        """A bridge with these settings; ``apps`` adds call apps (name → factory)."""
        values: dict[str, Any] = {
            "twilio_auth_token": AUTH_TOKEN,
            "lmnt_base_url": speech_server.base_url,
            "lmnt_api_key": "test-lmnt-key",
            "flows_dir": FLOWS_DIR,
            "flow": "welcome.yaml",
            "port": 0,
        }
        values.update(overrides)
        bridge = await start_bridge(
            Settings(**values), apps=apps, default_app=default_app, campaigns=campaigns
        )
        bridges.append(bridge)
        return bridge

    yield factory
    for bridge in bridges:
        await bridge.stop()


@pytest.fixture
async def bridge(make_bridge: Callable[..., Any]) -> RunningBridge:
    return await make_bridge()
