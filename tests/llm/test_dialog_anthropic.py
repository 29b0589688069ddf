"""The same barge-in memory guarantee with Anthropic's SDK against its event-stream stand-in."""

from __future__ import annotations

import pytest

from ivr_bridge.call.testing import ScriptedCall, utterance
from ivr_bridge.dialog.llm_dialog import LlmDialogConfig, run_llm_dialog
from ivr_bridge.errors import CallEnding
from ivr_bridge.llm.anthropic_provider import AnthropicProvider
from ivr_bridge.llm.settings import LLMSettings
from ivr_bridge.llm.tools import ToolConfig
from tests.llm.fake_call import EchoTranscriber
from tests.llm.standin_llm import AnthropicStandIn, Reply


async def test_interrupted_reply_reaches_claude_as_heard_words(
    anthropic_server: AnthropicStandIn,
) -> None:
    anthropic_server.script(
        Reply(text=["Your appointment", " is on", " Tuesday at", " nine."], chunk_delay_s=0.05),
        Reply(text=["Sure,", " let's move it."]),
        Reply(tool_calls=[("toolu_9", "transfer_call", ["{}"])]),
    )
    call = ScriptedCall(
        [utterance("when is it"), utterance("can I move it"), utterance("a person please")],
        interrupt={0: 20},
    )
    settings = LLMSettings(model="claude-stand-in", api_key="k", retry_backoff_ms=0)
    provider = AnthropicProvider(
        model="claude-stand-in", api_key="k", base_url=anthropic_server.base_url
    )
    config = LlmDialogConfig(settings, ToolConfig(transfer_to="+15550003333"), max_no_input=0)
    try:
        with pytest.raises(CallEnding):
            await run_llm_dialog(call, provider, EchoTranscriber(), config, system_prompt="Hi.")
    finally:
        await provider.close()
    second = anthropic_server.bodies[1]["messages"]
    assert second[1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Your appointment is —"}],
    }
    assert "Tuesday" not in str(anthropic_server.bodies[1])
    assert call.ended == ("dial", "+15550003333")
