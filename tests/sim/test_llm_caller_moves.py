"""The LLM caller: what the model is told, what a reply makes the caller do, the settings it
refuses before anything dials (pure), and the ``converse`` step on a scripted line with a
stand-in model over HTTP: it stops after ``max_turns``, and a model that fails mid-call makes
the caller hang up with the error in the result instead of crashing the run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sim_fakes import AUTH_TOKEN, SPEED, Peer, tone

from ivr_bridge.llm.types import (
    AssistantMessage,
    ChatRequest,
    Done,
    LLMError,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallComplete,
    ToolResultMessage,
    UserMessage,
)
from ivr_bridge.sim import parse_script, run_call
from ivr_bridge.sim.scenario.llm_caller import (
    SILENCE,
    LLMCaller,
    check_script,
    move_from,
    system_prompt,
)
from ivr_bridge.sim.scenario.recording import CallRecorder
from ivr_bridge.sim.scenario.result import CallResult, check_expectations
from ivr_bridge.sim.scenario.script import Converse, Expectations, ScriptError
from ivr_bridge.sim.twilio.twiml import Verdict
from tests.llm.standin_llm import OpenAIStandIn, Reply


class ScriptedModel:
    """A provider that answers each request with the next scripted list of events."""

    name = "scripted"

    def __init__(self, *replies: list[StreamEvent]) -> None:
        self.replies = list(replies)
        self.requests: list[ChatRequest] = []
        self.closed = False

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        self.requests.append(request)
        for event in self.replies.pop(0):
            yield event

    async def close(self) -> None:
        self.closed = True


def call(name: str, **arguments: str) -> ToolCallComplete:
    return ToolCallComplete(ToolCall(f"id-{name}", name, dict(arguments)))


OPTIONS = Converse(goal="Get the balance.", persona="Ana, in a hurry.", model="m")


def test_the_prompt_carries_the_goal_and_the_persona() -> None:
    prompt = system_prompt("Get the balance.", "Ana, in a hurry.")
    assert "CALLER" in prompt and "Get the balance." in prompt and "Ana, in a hurry." in prompt


async def test_the_bot_speaks_as_the_user_and_the_caller_as_the_assistant() -> None:
    model = ScriptedModel(
        [TextDelta("Balance, "), TextDelta("please."), Done("stop")],
        [call("press_keys", digits="4417#"), Done("tool_calls")],
    )
    caller = LLMCaller(OPTIONS, provider=model)
    first = await caller.next_move("Press 1 or say balance.")
    assert first.say == "Balance, please." and not first.keys and not first.hang_up
    second = await caller.next_move("")
    assert second.keys == "4417#"
    history = model.requests[1].messages
    assert history[0] == UserMessage("Press 1 or say balance.")
    assert history[1] == AssistantMessage("Balance, please.")
    assert history[2] == UserMessage(SILENCE)  # the agent said nothing this turn
    assert [type(m) for m in caller.history[3:]] == [AssistantMessage, ToolResultMessage]
    assert {t.name for t in model.requests[0].tools} == {"press_keys", "hang_up"}


def test_a_reply_becomes_one_move() -> None:
    hang = ToolCall("1", "hang_up", {})
    keys = ToolCall("2", "press_keys", {"digits": "1 2x#"})
    assert move_from("Goodbye.", [hang]).hang_up
    assert move_from("", [keys]).keys == "12#"  # what is not a key is not pressed
    assert move_from("", [ToolCall("3", "order_pizza", {})]) == move_from("", [])


def test_a_converse_step_needs_a_model_and_a_key_before_it_dials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("IVR_CALLER_LLM_MODEL", "IVR_CALLER_LLM_API_KEY", "IVR_CALLER_LLM_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    script = parse_script("steps:\n  - converse: {goal: Say hi.}\n", "llm.yaml")
    assert script.branches and script.needs_words()  # it needs ears while the call runs
    with pytest.raises(ScriptError, match="IVR_CALLER_LLM_MODEL"):
        check_script(script)
    monkeypatch.setenv("IVR_CALLER_LLM_MODEL", "gpt-4o-mini")
    with pytest.raises(ScriptError, match="set IVR_CALLER_LLM_API_KEY"):
        check_script(script)
    local = parse_script(
        "steps:\n  - converse: {goal: Say hi., base_url: 'http://127.0.0.1:11434/v1'}\n", "l.yaml"
    )
    check_script(local)  # a local server needs no key


def test_a_bad_converse_step_is_named() -> None:
    with pytest.raises(ScriptError, match="max_turns"):
        parse_script("steps:\n  - converse: {goal: Hi., max_turns: 0}\n", "bad.yaml")


class SilentModel(ScriptedModel):
    """A model that never finishes its reply."""

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        self.requests.append(request)
        yield TextDelta("Well")
        await asyncio.sleep(60)


async def test_no_whole_reply_in_time_is_an_llm_error() -> None:
    caller = LLMCaller(Converse(goal="Hi.", model="m", timeout_s=0.05), provider=SilentModel())
    with pytest.raises(LLMError, match=r"no whole reply within 0\.05 s") as raised:
        await caller.next_move("Hello?")
    assert raised.value.kind == "timeout"


def test_a_refused_key_names_the_variable_to_check() -> None:
    caller = LLMCaller(
        Converse(goal="Hi.", model="m", api_key_env="MY_KEY"), provider=ScriptedModel()
    )
    refused = LLMError("auth", "Incorrect API key provided", retryable=False, status=401)
    assert caller.explain(refused).endswith("(check MY_KEY)")
    assert "check" not in caller.explain(LLMError("server", "boom", retryable=True))


def test_a_failed_model_makes_the_call_inconclusive_and_shows_in_the_summary() -> None:
    recorder = CallRecorder()
    recorder.event(1000.0, "llm_turn", heard="Menu.", said="Balance.", keys="", hang_up=False)
    recorder.event(2000.0, "llm_turn", heard="Number?", said="", keys="4417#", hang_up=False)
    recorder.event(3000.0, "llm_error", error="server: boom (HTTP 500)")
    verdict = Verdict("caller_hangup")
    checks = check_expectations(Expectations(ended="caller_hangup"), verdict, recorder, None)
    assert checks[0].name == "LLM caller answered" and checks[0].status == "inconclusive"
    assert "HTTP 500" in checks[0].detail
    result = CallResult("CA1", "MZ1", verdict, recorder, None, 1.0, checks)
    assert result.status == "inconclusive"  # not a pass: the agent was not heard out
    table = result.summary_table()
    assert "said 'Balance.'" in table and "pressed 4417#" in table
    assert "llm_error" in table and "HTTP 500" in table


# --- the converse step on a scripted line, the model a stand-in over HTTP ----------------------


async def answers_each_key(peer: Peer) -> None:
    """The bot speaks, and again after every key the caller presses."""
    answered = 0
    while not peer.closed:
        await peer.send_media(tone(400))
        answered += 1
        await peer.wait_until(lambda n=answered: peer.closed or len(peer.of("dtmf")) >= n, 60)


async def hears_a_menu(pcm16: bytes, sample_rate: int) -> str:
    return "Press one for the menu."


async def speaks(text: str, voice: str, rate: float = 1.0) -> bytes:
    return tone(300, freq=220)  # the caller's "voice": real audio on the line, no synthesiser


@pytest.fixture
async def model() -> AsyncIterator[OpenAIStandIn]:
    server = OpenAIStandIn()
    await server.start()
    yield server
    await server.stop()


def converse_script(base_url: str, max_turns: int) -> Any:
    return parse_script(
        f"""
steps:
  - converse:
      goal: Reach the menu.
      model: caller-model
      base_url: {base_url}
      max_turns: {max_turns}
expect:
  ended: caller_hangup
""",
        "converse.yaml",
    )


async def converse_call(bridge: Any, model: OpenAIStandIn, max_turns: int) -> CallResult:
    return await run_call(
        voice_url=bridge.voice_url,
        ws_url=None,
        script=converse_script(model.openai_base_url, max_turns),
        auth_token=AUTH_TOKEN,
        speed=SPEED,
        caller_speech=speaks,
        transcriber=hears_a_menu,
    )


def press(digits: str) -> Reply:
    return Reply(
        text=["One, please."], tool_calls=[("c", "press_keys", [f'{{"digits": "{digits}"}}'])]
    )


async def test_the_caller_gives_up_after_max_turns(make_bridge: Any, model: OpenAIStandIn) -> None:
    model.script(press("1"), press("1"), press("1"), press("1"))
    result = await converse_call(await make_bridge(answers_each_key), model, max_turns=3)
    table = result.summary_table()
    assert len(model.bodies) == 3, table  # one request per turn, none after the last
    turns = [e for e in result.events if e["event"] == "llm_turn"]
    assert [(t["said"], t["keys"], t["hang_up"]) for t in turns] == [
        ("One, please.", "1", False)
    ] * 3
    assert [e["turns"] for e in result.events if e["event"] == "llm_gave_up"] == [3]
    # Each turn was said and pressed on the line like a scripted step's.
    assert [(t.kind, t.detail) for t in result.turns] == [
        ("say", "One, please."),
        ("press", "1"),
    ] * 3
    assert "".join(e["digit"] for e in result.events if e["event"] == "digit") == "111"
    # The last request holds the whole conversation: the bot as the user, the caller as the
    # assistant (each of its key presses answered, as the chat APIs require).
    roles = [m["role"] for m in model.bodies[2]["messages"]]
    assert roles == ["system", *["user", "assistant", "tool"] * 2, "user"]
    assert model.bodies[2]["messages"][1]["content"] == "Press one for the menu."
    assert result.verdict.kind == "caller_hangup" and result.passed, table


async def test_a_model_error_mid_call_hangs_up_and_is_in_the_result(
    make_bridge: Any, model: OpenAIStandIn
) -> None:
    model.script(press("2"), Reply(status=500, error_message="The model is overloaded."))
    result = await converse_call(await make_bridge(answers_each_key), model, max_turns=5)
    table = result.summary_table()
    assert len(model.bodies) == 2, table
    [error] = [e for e in result.events if e["event"] == "llm_error"]
    assert "HTTP 500" in error["error"] and "overloaded" in error["error"], table
    assert len([e for e in result.events if e["event"] == "llm_turn"]) == 1
    assert not [e for e in result.events if e["event"] == "llm_gave_up"]
    assert result.verdict.kind == "caller_hangup", table  # the caller hung up, nothing crashed
    assert result.status == "inconclusive", table
    assert "llm_error" in table
