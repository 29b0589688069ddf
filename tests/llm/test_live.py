"""Live vendor checks: run only with real keys (IVR_LLM_API_KEY, DEEPGRAM_API_KEY)."""

from __future__ import annotations

import math
import os
import struct

import pytest

from ivr_bridge.llm.factory import make_provider
from ivr_bridge.llm.settings import load_llm_settings
from ivr_bridge.llm.types import (
    ChatRequest,
    Done,
    TextDelta,
    ToolCallComplete,
    ToolSpec,
    UserMessage,
)
from ivr_bridge.stt import DeepgramTranscriber

pytestmark = pytest.mark.live

needs_llm = pytest.mark.skipif(
    not os.environ.get("IVR_LLM_API_KEY") or not os.environ.get("IVR_LLM_MODEL"),
    reason="live LLM test: set IVR_LLM_API_KEY and IVR_LLM_MODEL (and IVR_LLM_BASE_URL/PROVIDER)",
)
needs_deepgram = pytest.mark.skipif(
    not os.environ.get("DEEPGRAM_API_KEY"), reason="live Deepgram test: set DEEPGRAM_API_KEY"
)


@needs_llm
async def test_live_llm_streams_text_and_calls_a_tool() -> None:
    provider = make_provider(load_llm_settings())
    tool = ToolSpec(
        "end_call",
        "Hang up the call.",
        {"type": "object", "properties": {"reason": {"type": "string"}}, "required": ["reason"]},
    )
    try:
        events = [
            e
            async for e in provider.stream(
                ChatRequest("Answer in one short sentence.", (UserMessage("Say hello."),))
            )
        ]
        assert "".join(e.text for e in events if isinstance(e, TextDelta)).strip()
        assert isinstance(events[-1], Done)
        request = ChatRequest(
            "You are a phone agent. When the caller says goodbye, call end_call.",
            (UserMessage("That's all, goodbye!"),),
            (tool,),
        )
        events = [e async for e in provider.stream(request)]
        assert any(isinstance(e, ToolCallComplete) and e.call.name == "end_call" for e in events)
    finally:
        await provider.close()


@needs_deepgram
async def test_live_deepgram_accepts_phone_audio() -> None:
    pcm = b"".join(struct.pack("<h", int(3000 * math.sin(i / 3))) for i in range(8000))
    result = await DeepgramTranscriber(os.environ["DEEPGRAM_API_KEY"]).transcribe(pcm, 8000)
    assert result.engine.startswith("deepgram") and isinstance(result.text, str)
