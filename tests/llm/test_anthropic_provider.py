"""AnthropicProvider (official SDK) against a stand-in speaking Anthropic's event stream."""

from __future__ import annotations

import pytest

from ivr_bridge.llm.anthropic_provider import CALL_CONNECTED, AnthropicProvider
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
from tests.llm.standin_llm import AnthropicStandIn, Reply

REQUEST = ChatRequest("Be brief.", (UserMessage("What's my balance?"),))


def provider(server: AnthropicStandIn, **kw: float) -> AnthropicProvider:
    return AnthropicProvider(
        model="claude-stand-in", api_key="sk-ant-test", base_url=server.base_url, **kw
    )


async def collect(p: AnthropicProvider, request: ChatRequest = REQUEST) -> list[StreamEvent]:
    try:
        return [event async for event in p.stream(request)]
    finally:
        await p.close()


async def test_text_then_tool_use_from_the_event_stream(anthropic_server: AnthropicStandIn) -> None:
    anthropic_server.script(
        Reply(text=["Let me ", "check."], tool_calls=[("toolu_1", "lookup", ['{"id":', ' "9"}'])])
    )
    events = await collect(provider(anthropic_server))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Let me check."
    calls = [e.call for e in events if isinstance(e, ToolCallComplete)]
    assert calls == [ToolCall("toolu_1", "lookup", {"id": "9"}, '{"id": "9"}')]
    assert isinstance(events[-1], Done) and events[-1].finish_reason == "tool_calls"
    assert events[-1].usage.output_tokens == 9


async def test_request_renders_history_for_anthropic(anthropic_server: AnthropicStandIn) -> None:
    call = ToolCall("toolu_1", "lookup", {"id": "9"}, '{"id": "9"}')
    request = ChatRequest(
        "Be brief.",
        (
            AssistantMessage("Hi, how can I", interrupted=True),
            UserMessage("Order nine"),
            AssistantMessage("Checking.", (call,)),
            ToolResultMessage("toolu_1", "lookup", '{"status": "late"}'),
        ),
        (ToolSpec("lookup", "Find an order"),),
    )
    await collect(provider(anthropic_server), request)
    body = anthropic_server.bodies[0]
    assert body["system"] == "Be brief."
    assert body["tools"][0]["input_schema"] == {"type": "object", "properties": {}}
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": CALL_CONNECTED}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Hi, how can I —"}]},
        {"role": "user", "content": [{"type": "text", "text": "Order nine"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"id": "9"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": '{"status": "late"}'}
            ],
        },
    ]
    headers = anthropic_server.recorded.headers[0]
    # SDK 0.x sends X-Api-Key; SDK 2.x sends the same key as a bearer token.
    assert "sk-ant-test" in (headers.get("x-api-key") or headers.get("authorization", ""))


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [(429, "rate_limited", True), (529, "overloaded", True), (401, "auth", False)],
)
async def test_http_errors_are_typed(
    anthropic_server: AnthropicStandIn, status: int, kind: str, retryable: bool
) -> None:
    anthropic_server.script(Reply(status=status, error_message="slow down please"))
    with pytest.raises(LLMError) as caught:
        await collect(provider(anthropic_server))
    assert (caught.value.kind, caught.value.retryable) == (kind, retryable)
    assert "slow down please" in str(caught.value)


async def test_error_event_mid_stream_is_typed_overloaded(
    anthropic_server: AnthropicStandIn,
) -> None:
    anthropic_server.script(
        Reply(text=["Sure", ", one"], error_after=1, error_message="Overloaded")
    )
    seen: list[str] = []
    p = provider(anthropic_server)
    with pytest.raises(LLMError) as caught:
        async for event in p.stream(REQUEST):
            if isinstance(event, TextDelta):
                seen.append(event.text)
    await p.close()
    assert seen == ["Sure"]
    assert caught.value.kind == "overloaded" and caught.value.retryable


async def test_slow_first_token_times_out(anthropic_server: AnthropicStandIn) -> None:
    anthropic_server.script(Reply(text=["late"], first_delay_s=1.0))
    with pytest.raises(LLMTimeout) as caught:
        await collect(provider(anthropic_server, first_token_timeout_s=0.2))
    assert caught.value.stage == "first_token"
