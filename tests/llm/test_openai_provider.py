"""OpenAICompatibleProvider against a stand-in server speaking the real SSE wire."""

from __future__ import annotations

import pytest

from ivr_bridge.llm.openai_compat import OpenAICompatibleProvider
from ivr_bridge.llm.types import (
    AssistantMessage,
    ChatRequest,
    Done,
    LLMError,
    LLMTimeout,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallComplete,
    ToolResultMessage,
    ToolSpec,
    UserMessage,
)
from tests.llm.standin_llm import OpenAIStandIn, Reply

REQUEST = ChatRequest("Be brief.", (UserMessage("What's my balance?"),))


def provider(server: OpenAIStandIn, **kw: float) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(
        base_url=server.openai_base_url, model="stand-in-1", api_key="sk-test-123", **kw
    )


async def collect(p: OpenAICompatibleProvider, request: ChatRequest = REQUEST) -> list[StreamEvent]:
    try:
        return [event async for event in p.stream(request)]
    finally:
        await p.close()


async def test_text_deltas_arrive_in_order_and_end_with_done(openai_server: OpenAIStandIn) -> None:
    openai_server.script(Reply(text=["Your bal", "ance is ", "twelve dollars."]))
    events = await collect(provider(openai_server))
    assert [e.text for e in events if isinstance(e, TextDelta)] == [
        "Your bal",
        "ance is ",
        "twelve dollars.",
    ]
    done = events[-1]
    assert isinstance(done, Done) and done.finish_reason == "stop"
    assert done.usage.input_tokens == 42 and done.usage.output_tokens == 7


async def test_request_carries_model_history_tools_and_bearer_key(
    openai_server: OpenAIStandIn,
) -> None:
    call = ToolCall("call_1", "lookup", {"id": "7"}, '{"id": "7"}')
    request = ChatRequest(
        "Be brief.",
        (
            UserMessage("Hi"),
            AssistantMessage("Let me check, your order", (), interrupted=True),
            UserMessage("Order seven"),
            AssistantMessage("", (call,)),
            ToolResultMessage("call_1", "lookup", '{"status": "shipped"}'),
        ),
        (ToolSpec("lookup", "Find an order", {"type": "object", "properties": {}}),),
    )
    await collect(provider(openai_server), request)
    body = openai_server.bodies[0]
    assert body["model"] == "stand-in-1" and body["stream"] is True
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Let me check, your order —"},
        {"role": "user", "content": "Order seven"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"id": "7"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "shipped"}'},
    ]
    assert body["tools"][0]["function"]["name"] == "lookup"
    assert openai_server.recorded.headers[0]["authorization"] == "Bearer sk-test-123"


async def test_tool_call_fragments_assemble_into_complete_calls(
    openai_server: OpenAIStandIn,
) -> None:
    openai_server.script(
        Reply(
            text=["One moment."],
            tool_calls=[
                ("call_a", "lookup_order", ['{"ord', 'er_id": "4', '2"}']),
                ("call_b", "end_call", ['{"reason":', ' "done"}']),
            ],
        )
    )
    events = await collect(provider(openai_server))
    calls = [e.call for e in events if isinstance(e, ToolCallComplete)]
    assert calls == [
        ToolCall("call_a", "lookup_order", {"order_id": "42"}, '{"order_id": "42"}'),
        ToolCall("call_b", "end_call", {"reason": "done"}, '{"reason": "done"}'),
    ]
    assert isinstance(events[-1], Done) and events[-1].finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (429, "rate_limited", True),
        (500, "server", True),
        (401, "auth", False),
        (400, "bad_request", False),
    ],
)
async def test_http_errors_are_typed_with_the_vendor_message(
    openai_server: OpenAIStandIn, status: int, kind: str, retryable: bool
) -> None:
    openai_server.script(Reply(status=status, error_message="Rate limit reached for stand-in-1"))
    with pytest.raises(LLMError) as caught:
        await collect(provider(openai_server))
    assert caught.value.kind == kind and caught.value.retryable is retryable
    assert caught.value.status == status
    assert "Rate limit reached for stand-in-1" in str(caught.value)
    assert "sk-test-123" not in str(caught.value)


async def test_error_inside_the_stream_is_raised_after_the_text_before_it(
    openai_server: OpenAIStandIn,
) -> None:
    openai_server.script(Reply(text=["Hello", " there"], error_after=1, error_message="overloaded"))
    seen: list[str] = []
    p = provider(openai_server)
    with pytest.raises(LLMError, match="overloaded"):
        async for event in p.stream(REQUEST):
            if isinstance(event, TextDelta):
                seen.append(event.text)
    await p.close()
    assert seen == ["Hello"]


async def test_mid_stream_disconnect_is_a_retryable_disconnect(
    openai_server: OpenAIStandIn,
) -> None:
    openai_server.script(Reply(text=["Hello", " there", " friend"], disconnect_after=2))
    with pytest.raises(LLMError) as caught:
        await collect(provider(openai_server))
    assert caught.value.kind == "disconnected" and caught.value.retryable


async def test_slow_first_token_times_out(openai_server: OpenAIStandIn) -> None:
    openai_server.script(Reply(text=["late"], first_delay_s=1.0))
    with pytest.raises(LLMTimeout) as caught:
        await collect(provider(openai_server, first_token_timeout_s=0.2))
    assert caught.value.stage == "first_token" and caught.value.retryable


async def test_stalled_stream_times_out_as_idle(openai_server: OpenAIStandIn) -> None:
    openai_server.script(Reply(text=["Hi", " there"], chunk_delay_s=1.0))
    with pytest.raises(LLMTimeout) as caught:
        await collect(provider(openai_server, idle_timeout_s=0.2))
    assert caught.value.stage == "idle"


async def test_unreachable_server_is_a_connect_error() -> None:
    p = OpenAICompatibleProvider(base_url="http://127.0.0.1:9/v1", model="m", connect_timeout_s=1)
    with pytest.raises(LLMError) as caught:
        await collect(p)
    assert caught.value.kind == "connect" and caught.value.retryable


async def test_malformed_chunk_is_a_protocol_error_not_a_crash(
    openai_server: OpenAIStandIn,
) -> None:
    bad = '{"choices": [{"delta": {"tool_calls": [{"index": "x"}]}}]}'
    openai_server.script(Reply(text=["Hello", " there"], raw_after=1, raw_data=bad))
    with pytest.raises(LLMError) as caught:
        await collect(provider(openai_server))
    assert caught.value.kind == "protocol" and not caught.value.retryable
