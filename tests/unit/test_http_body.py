"""HTTP bodies: read whole when sent in many chunks (http step, LLM tools); errors keep no query."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from ivr_bridge.call.testing import ScriptedCall
from ivr_bridge.dialog.flow_model import HttpSpec
from ivr_bridge.dialog.http_step import run_http
from ivr_bridge.llm.tools import HttpTool, run_http_tool

BODY = {"items": [f"item {i} " + "x" * 40 for i in range(1500)]}  # ~75 KB of JSON


async def _chunked(request: web.Request) -> web.StreamResponse:
    raw = json.dumps(BODY).encode()
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    for i in range(0, len(raw), 4096):
        await response.write(raw[i : i + 4096])
        await asyncio.sleep(0.001)  # let the client see a partial body between chunks
    await response.write_eof()
    return response


@pytest.fixture
async def chunked_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/", _chunked)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/"
    await runner.cleanup()


async def test_http_step_reads_a_body_sent_in_many_chunks(chunked_url: str) -> None:
    spec = HttpSpec(url=chunked_url, into="x", on_failure="f")
    outcome = await run_http(spec, "lookup", ScriptedCall(), {}, 1 << 20)
    assert outcome.error is None
    assert outcome.ok and outcome.data == BODY


async def test_http_step_still_refuses_a_body_over_the_limit(chunked_url: str) -> None:
    spec = HttpSpec(url=chunked_url, into="x", on_failure="f")
    outcome = await run_http(spec, "lookup", ScriptedCall(), {}, 10_000)
    assert not outcome.ok and outcome.error == "response larger than 10000 bytes"


async def test_http_tool_reads_a_body_sent_in_many_chunks(chunked_url: str) -> None:
    result = await run_http_tool(HttpTool(name="t", description="d", url=chunked_url), {})
    assert not result.is_error
    # the result is cut to MAX_RESULT_CHARS, but it is the JSON answer, not {"text": ...}
    assert result.content.startswith('{"items": ["item 0 ')


@pytest.mark.parametrize("url", ["http://[bad/x?acct=12345", "ftp://h/x?acct=12345"])
async def test_http_step_errors_never_carry_the_url_query(url: str) -> None:
    call = ScriptedCall()
    spec = HttpSpec(url=url, into="x", on_failure="f")
    outcome = await run_http(spec, "lookup", call, {}, 1 << 20)
    assert not outcome.ok and outcome.error
    [event] = call.events_of("http")
    assert "12345" not in outcome.error and "12345" not in event["url"]
