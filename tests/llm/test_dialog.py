"""The LLM dialog over a faithful fake call and the stand-in OpenAI-compatible server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from ivr_bridge.call.inputs import DtmfInput
from ivr_bridge.call.testing import ScriptedCall, utterance
from ivr_bridge.dialog.llm_dialog import LlmDialogConfig, LlmOutcome, run_llm_dialog
from ivr_bridge.errors import CallEnding
from ivr_bridge.llm.history import INTERRUPTION_NOTE
from ivr_bridge.llm.openai_compat import OpenAICompatibleProvider
from ivr_bridge.llm.settings import LLMSettings
from ivr_bridge.llm.tools import HttpTool, ToolConfig
from tests.llm.fake_call import EchoTranscriber
from tests.llm.standin_llm import OpenAIStandIn, Reply

ANSWER = ["Your bal", "ance is twelve", " dollars and", " fifty cents."]


def settings(**overrides: Any) -> LLMSettings:
    values: dict[str, Any] = {
        "model": "stand-in-1",
        "api_key": "sk-test",
        "filler_after_ms": 2000,
        "max_dead_air_ms": 2000,
        "retry_backoff_ms": 0,
    }
    values.update(overrides)
    return LLMSettings(**values)


async def run(
    server: OpenAIStandIn, call: ScriptedCall, *, tools: ToolConfig | None = None, **kw: Any
) -> LlmOutcome:
    provider = OpenAICompatibleProvider(base_url=server.openai_base_url, model="stand-in-1")
    config = LlmDialogConfig(settings(**kw), tools or ToolConfig(), max_no_input=0)
    try:
        return await run_llm_dialog(
            call, provider, EchoTranscriber(), config, system_prompt="You answer phones."
        )
    finally:
        await provider.close()


def roles(body: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(m["role"], m.get("content")) for m in body["messages"]]


async def test_answer_streams_into_the_call_and_is_remembered(openai_server: OpenAIStandIn) -> None:
    openai_server.script(Reply(text=ANSWER, chunk_delay_s=0.02), Reply(text=["Bye now."]))
    call = ScriptedCall([utterance("what's my balance"), utterance("thanks")])
    with pytest.raises(CallEnding):
        await run(openai_server, call)
    answer = call.spoken[0]
    assert answer.kind == "stream" and answer.text == "".join(ANSWER)
    assert len(answer.pieces) > 1, "text must reach the speech session as it streams"
    second = openai_server.bodies[1]
    assert second["messages"][0]["role"] == "system"
    assert INTERRUPTION_NOTE in second["messages"][0]["content"]
    assert roles(second)[1:] == [
        ("user", "what's my balance"),
        ("assistant", "Your balance is twelve dollars and fifty cents."),
        ("user", "thanks"),
    ]


async def test_barge_in_keeps_only_the_heard_words_flagged_interrupted(
    openai_server: OpenAIStandIn,
) -> None:
    long_answer = ["Your balance", " is twelve dollars", " and fifty cents,", " due on", " May 3."]
    openai_server.script(Reply(text=long_answer, chunk_delay_s=0.05), Reply(text=["Sure."]))
    call = ScriptedCall(
        [utterance("what's my balance"), utterance("wait, which account")], interrupt={0: 24}
    )
    with pytest.raises(CallEnding):
        await run(openai_server, call)
    assert call.spoken[0].interrupted
    assert call.spoken[0].heard == "Your balance is twelve"
    second = openai_server.bodies[1]
    assert roles(second)[1:] == [
        ("user", "what's my balance"),
        ("assistant", "Your balance is twelve —"),
        ("user", "wait, which account"),
    ]
    assert "fifty" not in str(second["messages"])


async def test_dtmf_reaches_the_model_as_a_keypress(openai_server: OpenAIStandIn) -> None:
    call = ScriptedCall([DtmfInput("5", 10.0)])
    with pytest.raises(CallEnding):
        await run(openai_server, call)
    assert roles(openai_server.bodies[0])[1] == ("user", "(The caller pressed 5 on the keypad.)")


async def test_transfer_tool_dials_the_allowed_number(openai_server: OpenAIStandIn) -> None:
    openai_server.script(
        Reply(text=["Connecting you now."], tool_calls=[("call_1", "transfer_call", ["{}"])])
    )
    call = ScriptedCall([utterance("get me a human")])
    with pytest.raises(CallEnding):
        await run(openai_server, call, tools=ToolConfig(transfer_to="+15550002222"))
    assert call.said == ["Connecting you now."]
    assert call.ended == ("dial", "+15550002222")
    tools = {t["function"]["name"] for t in openai_server.bodies[0]["tools"]}
    assert tools == {"transfer_call", "end_call"}


async def test_transfer_to_a_number_the_flow_does_not_allow_is_refused(
    openai_server: OpenAIStandIn,
) -> None:
    openai_server.script(
        Reply(tool_calls=[("call_1", "transfer_call", ['{"number": "+19000000000"}'])]),
        Reply(text=["I can't transfer you there."]),
    )
    call = ScriptedCall([utterance("call my friend")])
    with pytest.raises(CallEnding):
        await run(openai_server, call, tools=ToolConfig(transfer_to="+15550002222"))
    assert call.ended == ("hangup", None)
    tool_message = openai_server.bodies[1]["messages"][-1]
    assert tool_message["role"] == "tool" and "not allowed" in tool_message["content"]
    assert call.said[0] == "I can't transfer you there."


async def test_end_call_hangs_up_after_the_models_goodbye(openai_server: OpenAIStandIn) -> None:
    openai_server.script(
        Reply(
            text=["Glad I could help. Bye!"],
            tool_calls=[("c1", "end_call", ['{"reason": "done"}'])],
        )
    )
    call = ScriptedCall([utterance("that's all")])
    with pytest.raises(CallEnding):
        await run(openai_server, call)
    assert call.said == ["Glad I could help. Bye!"]
    assert call.ended == ("hangup", None)


async def test_end_call_without_words_says_goodbye_first(openai_server: OpenAIStandIn) -> None:
    openai_server.script(Reply(tool_calls=[("c1", "end_call", ['{"reason": "done"}'])]))
    call = ScriptedCall([utterance("bye")])
    with pytest.raises(CallEnding):
        await run(openai_server, call)
    assert call.said == ["Thanks for calling. Goodbye."]


async def test_goto_step_returns_to_the_flow(openai_server: OpenAIStandIn) -> None:
    openai_server.script(
        Reply(
            text=["Sure, back to the menu."],
            tool_calls=[("c1", "goto_step", ['{"step_id": "menu"}'])],
        )
    )
    call = ScriptedCall([utterance("main menu please")])
    outcome = await run(openai_server, call, tools=ToolConfig(goto_steps=("menu", "billing")))
    assert outcome == LlmOutcome("goto", step_id="menu")
    assert call.ended is None
    schema = next(
        t for t in openai_server.bodies[0]["tools"] if t["function"]["name"] == "goto_step"
    )["function"]["parameters"]
    assert schema["properties"]["step_id"]["enum"] == ["menu", "billing"]


@pytest.fixture
async def backend() -> AsyncIterator[tuple[str, list[Any]]]:
    seen: list[Any] = []

    async def order(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body)
        if body.get("order_id") == "0":
            return web.json_response({"detail": "boom"}, status=500)
        return web.json_response({"order_id": body["order_id"], "status": "shipped"})

    app = web.Application()
    app.router.add_post("/orders", order)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/orders", seen
    await runner.cleanup()


@pytest.mark.parametrize(("order_id", "expected"), [("42", '"shipped"'), ("0", "HTTP 500")])
async def test_http_tool_result_is_fed_back_to_the_model(
    openai_server: OpenAIStandIn, backend: tuple[str, list[Any]], order_id: str, expected: str
) -> None:
    url, seen = backend
    tool = HttpTool(
        "lookup_order",
        "Look up an order",
        url,
        {"type": "object", "properties": {"order_id": {"type": "string"}}},
    )
    openai_server.script(
        Reply(tool_calls=[("c1", "lookup_order", [f'{{"order_id": "{order_id}"}}'])]),
        Reply(text=["Here's what I found."]),
    )
    call = ScriptedCall([utterance("where's my order")])
    with pytest.raises(CallEnding):
        await run(openai_server, call, tools=ToolConfig(http_tools=(tool,)))
    assert seen == [{"order_id": order_id}]
    result = openai_server.bodies[1]["messages"][-1]
    assert result["role"] == "tool" and result["tool_call_id"] == "c1"
    assert expected in result["content"]
    assert call.said[0] == "Here's what I found."


async def test_slow_first_token_gets_a_filler_then_the_answer(openai_server: OpenAIStandIn) -> None:
    openai_server.script(Reply(text=["It's sunny."], first_delay_s=0.5))
    call = ScriptedCall([utterance("weather?")])
    with pytest.raises(CallEnding):
        await run(openai_server, call, filler_after_ms=100, max_dead_air_ms=3000)
    assert call.said[:2] == ["One moment.", "It's sunny."]


async def test_no_first_token_at_all_gets_the_fallback_line(openai_server: OpenAIStandIn) -> None:
    openai_server.script(Reply(text=["Too late."], first_delay_s=3.0), Reply(text=["Okay."]))
    call = ScriptedCall([utterance("hello"), utterance("hello again", start_ms=9000)])
    with pytest.raises(CallEnding):
        await run(
            openai_server, call, filler_after_ms=100, max_dead_air_ms=200, first_token_timeout_s=0.6
        )
    fallback = settings().fallback_text
    hold = settings().hold_texts
    at = call.said.index(fallback)
    assert call.said[0] == "One moment." and call.said[at + 1] == "Okay."
    assert call.said[1:at] and set(call.said[1:at]) <= set(hold), call.said
    assert "Too late." not in call.said
    assert len(openai_server.bodies) == 2, "the stalled request is never re-sent"
    assert roles(openai_server.bodies[1])[2] == ("assistant", fallback)


async def test_retryable_error_before_first_token_is_retried(openai_server: OpenAIStandIn) -> None:
    openai_server.script(Reply(status=500), Reply(status=429), Reply(text=["Hello!"]))
    call = ScriptedCall([utterance("hi")])
    with pytest.raises(CallEnding):
        await run(openai_server, call, max_retries=2)
    assert call.said[0] == "Hello!"
    assert len(openai_server.bodies) == 3
    assert openai_server.bodies[0] == openai_server.bodies[2]


async def test_auth_error_is_not_retried(openai_server: OpenAIStandIn) -> None:
    openai_server.script(Reply(status=401, error_message="bad key"))
    call = ScriptedCall([utterance("hi")])
    with pytest.raises(CallEnding):
        await run(openai_server, call, max_retries=3)
    assert call.said[0] == settings().fallback_text
    assert len(openai_server.bodies) == 1


async def test_mid_stream_failure_never_respeaks_text(openai_server: OpenAIStandIn) -> None:
    openai_server.script(
        Reply(text=["Your order", " shipped on", " Monday"], disconnect_after=2, chunk_delay_s=0.02)
    )
    call = ScriptedCall([utterance("order status")])
    with pytest.raises(CallEnding):
        await run(openai_server, call, max_retries=3)
    assert call.said[:2] == ["Your order shipped on", settings().fallback_text]
    assert len(openai_server.bodies) == 1


async def test_repeated_failures_end_the_call_politely(openai_server: OpenAIStandIn) -> None:
    openai_server.script(*[Reply(status=503) for _ in range(4)])
    call = ScriptedCall([utterance("a"), utterance("b"), utterance("c")])
    with pytest.raises(CallEnding):
        await run(openai_server, call, max_retries=0, max_failed_turns=2)
    fallback = settings().fallback_text
    assert call.said == [fallback, fallback, LlmDialogConfig(settings()).failure_goodbye_text]
    assert call.ended == ("hangup", None)


@pytest.mark.parametrize(
    "raw",
    [
        '{"choices": [{"delta": {"tool_calls": [{"index": "x"}]}}]}',
        '{"choices": [{"delta": {"tool_calls": [{"function": 7}]}}]}',
        '{"choices": "not a list"}',
    ],
)
async def test_malformed_chunk_mid_stream_gets_the_fallback_not_silence(
    openai_server: OpenAIStandIn, raw: str
) -> None:
    openai_server.script(Reply(text=["Hello", " there", " friend"], raw_after=1, raw_data=raw))
    call = ScriptedCall([utterance("hi")])
    with pytest.raises(CallEnding):  # bounded: a dead stream task used to hang here forever
        await asyncio.wait_for(run(openai_server, call, max_retries=3), timeout=5)
    assert call.said[:2] == ["Hello", settings().fallback_text]
    assert len(openai_server.bodies) == 1, "a protocol error after text is never re-sent"
