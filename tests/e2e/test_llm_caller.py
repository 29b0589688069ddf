"""The LLM caller on a real call: our support line, the real speech server, whisper as the
caller's ears, and a scripted OpenAI-compatible model (the stand-in) deciding each turn. The
model is told what the caller heard, and what it decides is what the line acts on: its words
take the menu's balance branch, its keys are the account number, its ``hang_up`` ends the call.

No timing is asserted: every turn waits for the agent to fall quiet, and what the agent said is
checked in words (whichever prompt or reprompt the line chose on a slow machine, it names what
this test looks for)."""

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
      goal: Find out your account balance (your account number is 4417), then hang up.
      persona: A patient caller.
      model: caller-model
      base_url: {base_url}
      max_turns: 5
expect:
  ended: caller_hangup
  keys: "4417#"
  bot_said: [please enter your account number]
"""


@pytest.fixture
async def model() -> Any:
    server = OpenAIStandIn()
    await server.start()
    yield server
    await server.stop()


async def test_the_model_asks_for_the_balance_keys_the_account_and_hangs_up(
    make_bridge: Any, model: OpenAIStandIn
) -> None:
    from ivr_bridge.sim.scenario.hearing import load_bot_transcriber

    model.script(
        Reply(text=["Account balance, ", "please."]),
        Reply(tool_calls=[("call_1", "press_keys", ['{"digits": ', '"4417#"}'])]),
        Reply(tool_calls=[("call_2", "hang_up", ['{"reason": ', '"got the answer"}'])]),
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
    table = result.summary_table()
    # Exactly one request per caller turn: three turns, the last one the hang-up.
    assert len(model.bodies) == 3, table
    first, second, third = model.bodies
    assert first["model"] == "caller-model"
    system = first["messages"][0]
    assert system["role"] == "system" and "Find out your account balance" in system["content"]
    assert "A patient caller" in system["content"]
    # The model heard the menu (as the user), and nothing else yet.
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert "say balance" in first["messages"][1]["content"].lower(), table
    # Its words reached the bridge: the line went to the balance branch and asked for the account.
    roles = [m["role"] for m in second["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert second["messages"][2]["content"] == "Account balance, please."
    assert "account number" in second["messages"][3]["content"].lower(), table
    # Its keys reached the bridge too: the line answered about the balance (looked up, or not).
    assert second["tools"] and {t["function"]["name"] for t in second["tools"]} == {
        "press_keys",
        "hang_up",
    }
    assert third["messages"][4]["tool_calls"][0]["function"]["name"] == "press_keys"
    assert "balance" in third["messages"][-1]["content"].lower(), table
    # Every turn is in the call's events, and the line heard the one sentence and the keys.
    turns = [e for e in result.events if e["event"] == "llm_turn"]
    assert [(t["said"], t["keys"], t["hang_up"]) for t in turns] == [
        ("Account balance, please.", "", False),
        ("", "4417#", False),
        ("", "", True),
    ]
    assert [(t.kind, t.detail) for t in result.turns] == [
        ("say", "Account balance, please."),
        ("press", "4417#"),
    ]
    assert not [e for e in result.events if e["event"] in ("llm_error", "llm_gave_up")], table
    # The call ended by the caller's hang-up, and the script's own checks agree.
    assert result.verdict.kind == "caller_hangup", table
    assert result.passed, table
