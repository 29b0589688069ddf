"""An LLM call's events, as the dialog records them against the vendors' stand-ins, become the
call metrics a scrape shows: speech-to-text time, first token, tokens, errors, tool calls."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from ivr_bridge.call.testing import ScriptedCall, utterance
from ivr_bridge.dialog.llm_dialog import LlmDialogConfig, run_llm_dialog
from ivr_bridge.errors import CallEnding
from ivr_bridge.llm.anthropic_provider import AnthropicProvider
from ivr_bridge.llm.openai_compat import OpenAICompatibleProvider
from ivr_bridge.llm.provider import LLMProvider
from ivr_bridge.llm.settings import LLMSettings
from ivr_bridge.llm.tools import ToolConfig
from ivr_bridge.server.call_metrics import CallMetrics
from tests.llm.fake_call import EchoTranscriber
from tests.llm.standin_llm import AnthropicStandIn, OpenAIStandIn, Reply

SETTINGS = LLMSettings(model="stand-in-1", api_key="sk-test", retry_backoff_ms=0, max_retries=0)


async def _call(provider: LLMProvider, call: ScriptedCall) -> CollectorRegistry:
    config = LlmDialogConfig(SETTINGS, ToolConfig(), max_no_input=0)
    try:
        with pytest.raises(CallEnding):
            await run_llm_dialog(call, provider, EchoTranscriber(), config, system_prompt="Hi.")
    finally:
        await provider.close()
    registry = CollectorRegistry()
    metrics = CallMetrics(registry)
    for event in call.events:
        metrics.observe_event(event["kind"], {k: v for k, v in event.items() if k != "kind"})
    return registry


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_an_openai_call_counts_tokens_errors_and_tools(openai_server: OpenAIStandIn) -> None:
    openai_server.script(
        Reply(text=["Your balance", " is twelve dollars."], first_delay_s=0.05),
        Reply(status=503),
        Reply(text=["Bye!"], tool_calls=[("c1", "end_call", ['{"reason": "done"}'])]),
    )
    call = ScriptedCall([utterance("balance"), utterance("and due"), utterance("bye")])
    provider = OpenAICompatibleProvider(base_url=openai_server.openai_base_url, model="stand-in-1")
    registry = await _call(provider, call)

    assert [e["kind"] for e in call.events].count("llm_usage") == 2  # the 503 reported none
    assert _value(registry, "ivr_stt_seconds_count", engine="echo") == 3
    assert _value(registry, "ivr_llm_first_token_seconds_count") == 2
    assert _value(registry, "ivr_llm_first_token_seconds_sum") >= 0.05
    assert _value(registry, "ivr_llm_tokens_total", direction="prompt") == 84
    assert _value(registry, "ivr_llm_tokens_total", direction="completion") == 14
    assert _value(registry, "ivr_llm_errors_total", kind="server") == 1
    assert _value(registry, "ivr_llm_tool_calls_total", tool="end_call") == 1


async def test_anthropic_usage_is_counted_too(anthropic_server: AnthropicStandIn) -> None:
    anthropic_server.script(Reply(tool_calls=[("toolu_1", "end_call", ["{}"])]))
    provider = AnthropicProvider(
        model="claude-stand-in", api_key="k", base_url=anthropic_server.base_url
    )
    registry = await _call(provider, ScriptedCall([utterance("that's all")]))

    assert _value(registry, "ivr_llm_tokens_total", direction="prompt") == 42
    assert _value(registry, "ivr_llm_tokens_total", direction="completion") == 9
    assert _value(registry, "ivr_llm_tool_calls_total", tool="end_call") == 1
