"""The LLM caller on a real call: our support line, the real speech server, whisper as the
caller's ears, and a scripted OpenAI-compatible model (the stand-in) deciding each turn. The
model is told what the caller heard, and what it decides is what the line hears."""

from __future__ import annotations

from typing import Any

import pytest

from ivr_bridge.sim import parse_script, run_call
from tests.e2e.conftest import AUTH_TOKEN
from tests.llm.standin_llm import OpenAIStandIn, Reply

pytest.importorskip("faster_whisper")

SCRIPT = """\
steps:
  - converse:
      goal: Hear the menu twice, then hang up.
      persona: A patient caller.
      model: caller-model
      base_url: {base_url}
      max_turns: 4
expect:
  ended: caller_hangup
"""


@pytest.fixture
async def model() -> Any:
    server = OpenAIStandIn()
    await server.start()
    yield server
    await server.stop()


async def test_the_model_hears_the_menu_asks_again_and_hangs_up(
    make_bridge: Any, model: OpenAIStandIn
) -> None:
    from ivr_bridge.sim.scenario.hearing import load_bot_transcriber

    model.script(
        Reply(text=["Say that ", "again, please."]),
        Reply(tool_calls=[("call_1", "hang_up", ['{"reason": ', '"heard it twice"}'])]),
    )
    bridge = await make_bridge(voice="heart")  # the neural voice: whisper hears it as a person
    result = await run_call(
        voice_url=f"{bridge.base_url}/twilio/voice?flow=support_line.yaml",
        ws_url=None,
        script=parse_script(SCRIPT.format(base_url=model.openai_base_url), "llm.yaml"),
        auth_token=AUTH_TOKEN,
        speed=1.0,
        transcriber=load_bot_transcriber(),
    )
    first, second = model.bodies  # exactly one request per caller turn, two turns
    assert first["model"] == "caller-model"
    system = first["messages"][0]
    assert system["role"] == "system" and "Hear the menu twice" in system["content"]
    assert "A patient caller" in system["content"]
    heard = first["messages"][-1]
    assert heard["role"] == "user" and "account balance" in heard["content"].lower()
    # The second request carries the caller's own line as the assistant's, then the menu again.
    roles = [m["role"] for m in second["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert second["messages"][2]["content"] == "Say that again, please."
    # (the menu again, or its reprompt: whichever the line made of the words, it offers balance)
    assert "say balance" in second["messages"][3]["content"].lower()
    turns = [e for e in result.events if e["event"] == "llm_turn"]
    assert [t["said"] for t in turns] == ["Say that again, please.", ""]
    assert turns[1]["hang_up"] is True
    said = [t for t in result.turns if t.kind == "say"]
    assert [t.detail for t in said] == ["Say that again, please."]  # what the line heard
    assert result.verdict.kind == "caller_hangup", result.summary_table()
    assert result.passed, result.summary_table()
