"""Shared fixtures: a speech server on a loopback port and the official SDK pointed at it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from lmnt import AsyncLmnt
from speech_test_helpers import TEST_KEY

from ivr_bridge.speechserver.app import (
    RunningSpeechServer,
    SpeechServerConfig,
    start_speech_server,
)


@pytest.fixture(autouse=True)
def _no_speech_server_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """SpeechServerConfig() reads IVR_SPEECH_*: a developer's settings must not change results."""
    for name in list(os.environ):
        if name.upper().startswith("IVR_SPEECH_"):
            monkeypatch.delenv(name)


@pytest.fixture
async def speech_server() -> AsyncIterator[RunningSpeechServer]:
    """A fresh server per test (fast: realtime_factor 0); tests may mutate ``server.config``."""
    server = await start_speech_server(SpeechServerConfig(realtime_factor=0.0))
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def lmnt_client(speech_server: RunningSpeechServer) -> AsyncIterator[AsyncLmnt]:
    client = AsyncLmnt(api_key=TEST_KEY, base_url=speech_server.base_url, max_retries=0)
    try:
        yield client
    finally:
        await client.close()
