"""Stand-in vendor servers for the LLM tests, started per test on loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.llm.standin_llm import AnthropicStandIn, OpenAIStandIn


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
