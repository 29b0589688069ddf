"""Settings every test run shares, and the vendors' stand-ins any test may start.

The stand-ins (``tests/llm/standin_llm.py``, ``tests/llm/standin_deepgram.py``) run per test on
loopback ports: ``openai_server``, ``anthropic_server``, ``deepgram``.

Call records (``IVR_RECORDS``, on by default) go to a directory of this run's own, never into
the checkout: every bridge a test starts, in this process or a subprocess, inherits it. A test
that reads records sets ``records_dir`` itself.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator

import pytest

from tests.llm.standin_deepgram import DeepgramStandIn
from tests.llm.standin_llm import AnthropicStandIn, OpenAIStandIn

_RECORDS_DIR: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _RECORDS_DIR
    if "IVR_RECORDS_DIR" not in os.environ:
        _RECORDS_DIR = tempfile.mkdtemp(prefix="ivr-test-records-")
        os.environ["IVR_RECORDS_DIR"] = _RECORDS_DIR


def pytest_unconfigure(config: pytest.Config) -> None:
    if _RECORDS_DIR is not None:
        shutil.rmtree(_RECORDS_DIR, ignore_errors=True)


@pytest.fixture
async def openai_server() -> AsyncIterator[OpenAIStandIn]:
    server = OpenAIStandIn()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def anthropic_server() -> AsyncIterator[AnthropicStandIn]:
    server = AnthropicStandIn()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def deepgram() -> AsyncIterator[DeepgramStandIn]:
    server = DeepgramStandIn()
    await server.start()
    yield server
    await server.stop()
