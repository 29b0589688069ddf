"""One model round (``run_round``) against the stand-in server: the filler clock, hold lines,
one request per turn, and speculative starts.

Real time passes only while the model stalls (the scripted call says things instantly unless a
test makes ``say`` take time), so assertions are on what was said, in which order, and how many
requests the model saw; the few durations used are far apart (0.1 s against 5 s).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ivr_bridge.call.control import BargeInPolicy, SayResult
from ivr_bridge.call.inputs import DtmfInput, SpeechInput
from ivr_bridge.call.testing import ScriptedCall
from ivr_bridge.dialog.llm_dialog import LlmDialogConfig, run_llm_dialog
from ivr_bridge.dialog.llm_turn import RoundResult, run_round, start_model
from ivr_bridge.errors import CallEnding
from ivr_bridge.llm.openai_compat import OpenAICompatibleProvider
from ivr_bridge.llm.settings import LLMSettings
from ivr_bridge.llm.tools import ToolConfig
from ivr_bridge.llm.types import ChatRequest, UserMessage
from tests.llm.fake_call import EchoTranscriber
from tests.llm.standin_llm import OpenAIStandIn, Reply

FILLER = "One moment."
REQUEST = ChatRequest(system="You answer phones.", messages=(UserMessage("hi"),), max_tokens=64)


def settings(**overrides: Any) -> LLMSettings:
    values: dict[str, Any] = {
        "model": "stand-in-1",
        "api_key": "sk-test",
        "filler_after_ms": 5000,
        "max_dead_air_ms": 5000,
        "first_token_timeout_s": 20,
        "retry_backoff_ms": 0,
    }
    values.update(overrides)
    return LLMSettings(**values)


@pytest.fixture
async def provider(openai_server: OpenAIStandIn) -> AsyncIterator[OpenAICompatibleProvider]:
    made = OpenAICompatibleProvider(base_url=openai_server.openai_base_url, model="stand-in-1")
    yield made
    await made.close()


class PlayingCall(ScriptedCall):
    """A scripted call whose ``say`` takes wall time, like a line being played out."""

    def __init__(self, say_s: float) -> None:
        super().__init__()
        self.say_s = say_s

    async def say(self, text: str, *, barge_in: BargeInPolicy | None = None) -> SayResult:
        await asyncio.sleep(self.say_s)
        return await super().say(text, barge_in=barge_in)


async def round_(
    call: ScriptedCall,
    provider: OpenAICompatibleProvider,
    s: LLMSettings,
    *,
    timeout_s: float = 15,
    **kw: Any,
) -> RoundResult:
    return await asyncio.wait_for(run_round(call, provider, REQUEST, s, **kw), timeout=timeout_s)


def streams_left() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "llm-stream" and not t.done()]


@pytest.mark.parametrize(("waited_ms", "fillers"), [(0, 0), (4900, 1), (9000, 1)])
async def test_the_filler_comes_sooner_by_the_time_the_caller_already_waited(
    openai_server: OpenAIStandIn, provider: OpenAICompatibleProvider, waited_ms: float, fillers: int
) -> None:
    # The model takes 1 s; the filler is due 5 s after the caller stopped talking. Fresh, the
    # answer comes first; after 4.9 s of endpointing and STT the filler is due in 0.1 s; past
    # the 5 s, at once.
    openai_server.script(Reply(text=["Hello."], first_delay_s=1.0))
    call = ScriptedCall()
    result = await round_(call, provider, settings(), waited_ms=waited_ms)
    assert result.status == "answered" and result.fillers == fillers
    assert call.said == [FILLER] * fillers + ["Hello."]
    assert result.waited_ms == waited_ms


async def test_a_long_stall_gets_hold_lines_then_the_answer_from_the_one_request(
    openai_server: OpenAIStandIn, provider: OpenAICompatibleProvider
) -> None:
    openai_server.script(Reply(text=["Your order", " shipped."], first_delay_s=1.5))
    call = ScriptedCall()
    s = settings(filler_after_ms=100, max_dead_air_ms=200, first_token_timeout_s=10)
    result = await round_(call, provider, s)
    assert result.status == "answered" and result.fallback is None
    assert call.said[0] == FILLER and call.said[-1] == "Your order shipped."
    holds = call.said[1:-1]
    assert len(holds) >= 2, call.said  # 1.5 s of stall, one line per 0.2 s of silence
    cycle = list(s.hold_texts) * len(holds)
    assert holds == cycle[: len(holds)], "the hold lines are said in turn"
    assert result.fillers == len(call.said) - 1
    assert len(openai_server.bodies) == 1, "one request: the stalled one is never re-sent"
    assert result.first_token_ms is not None and result.first_token_ms >= 1500


async def test_an_answer_arriving_during_a_filler_is_spoken_when_the_filler_ends(
    openai_server: OpenAIStandIn, provider: OpenAICompatibleProvider
) -> None:
    # The filler plays 0.8 s; the first token comes 0.4 s into it. The next timer (10 s of
    # silence) must not be what lets the answer out: it follows the filler at once (the round is
    # given 6 s, generous for 0.9 s of work, too short to wait for that timer).
    openai_server.script(Reply(text=["It's sunny."], first_delay_s=0.5))
    call = PlayingCall(say_s=0.8)
    s = settings(filler_after_ms=100, max_dead_air_ms=10_000, first_token_timeout_s=60)
    result = await round_(call, provider, s, timeout_s=6)
    assert call.said == [FILLER, "It's sunny."]
    assert result.status == "answered" and result.fillers == 1
    assert result.spoken is not None and result.spoken.text == "It's sunny."


async def test_the_hard_limit_says_the_fallback_and_never_re_sends(
    openai_server: OpenAIStandIn, provider: OpenAICompatibleProvider
) -> None:
    openai_server.script(Reply(text=["Too late."], first_delay_s=5.0))
    call = ScriptedCall()
    s = settings(filler_after_ms=100, max_dead_air_ms=5000, first_token_timeout_s=0.5)
    result = await round_(call, provider, s)
    assert result.status == "failed"
    assert call.said == [FILLER, s.fallback_text]
    assert len(openai_server.bodies) == 1
    (error,) = call.events_of("llm_error")
    assert error["error"] == "timeout" and error["stage"] == "first_token"
    assert not streams_left()


async def test_a_first_token_timeout_is_not_retried(openai_server: OpenAIStandIn) -> None:
    # The provider's own limit (0.2 s) fires before any filler is due: still no re-send.
    openai_server.script(Reply(text=["Slow."], first_delay_s=2.0), Reply(text=["Again."]))
    provider = OpenAICompatibleProvider(
        base_url=openai_server.openai_base_url, model="stand-in-1", first_token_timeout_s=0.2
    )
    call = ScriptedCall()
    try:
        result = await round_(call, provider, settings(max_retries=3))
    finally:
        await provider.close()
    assert result.status == "failed" and result.error is not None
    assert result.error.kind == "timeout"
    assert call.said == [settings().fallback_text]
    assert len(openai_server.bodies) == 1


async def test_a_failure_before_anything_was_said_is_retried_once(
    openai_server: OpenAIStandIn, provider: OpenAICompatibleProvider
) -> None:
    openai_server.script(Reply(status=503), Reply(text=["Hello!"]))
    call = ScriptedCall()
    result = await round_(call, provider, settings(max_retries=1))
    assert result.status == "answered" and call.said == ["Hello!"]
    assert len(openai_server.bodies) == 2


async def test_a_failure_after_the_filler_is_not_retried(
    openai_server: OpenAIStandIn, provider: OpenAICompatibleProvider
) -> None:
    # The connection drops before the first token, but the caller already heard the filler.
    openai_server.script(Reply(text=["Hi."], first_delay_s=0.6, disconnect_after=0))
    call = ScriptedCall()
    s = settings(filler_after_ms=100, max_retries=3)
    result = await round_(call, provider, s)
    assert result.status == "failed"
    assert call.said == [FILLER, s.fallback_text]
    assert len(openai_server.bodies) == 1


async def test_a_speculative_stream_is_used_by_the_round(
    openai_server: OpenAIStandIn, provider: OpenAICompatibleProvider
) -> None:
    openai_server.script(Reply(text=["Early", " answer."]))
    s = settings()
    stream = start_model(provider, REQUEST, s)
    await asyncio.wait_for(stream.started.wait(), timeout=5)  # answered before the round began
    call = ScriptedCall()
    result = await round_(call, provider, s, stream=stream)
    assert call.said == ["Early answer."] and result.status == "answered"
    assert len(openai_server.bodies) == 1, "the round did not send a request of its own"
    assert not streams_left()


async def test_a_cancelled_speculative_stream_leaves_no_task(
    openai_server: OpenAIStandIn, provider: OpenAICompatibleProvider
) -> None:
    openai_server.script(Reply(text=["Never heard."], first_delay_s=10.0))
    stream = start_model(provider, REQUEST, settings())
    for _ in range(500):
        if openai_server.bodies:
            break
        await asyncio.sleep(0.01)
    assert openai_server.bodies and stream.running
    await asyncio.wait_for(stream.cancel(), timeout=5)
    assert not stream.running and not streams_left()
    assert stream.started.is_set(), "anyone waiting on the stream is released"
    assert [piece async for piece in stream.text()] == []
    assert len(openai_server.bodies) == 1


async def test_the_dialog_counts_the_wait_from_when_the_caller_stopped_talking(
    openai_server: OpenAIStandIn,
) -> None:
    # Voice stopped at 200 ms, the utterance was handed over at 800 ms (600 ms of kept silence
    # and endpointing): with the filler due 700 ms after the voice stopped, it comes ~100 ms into
    # a 1.5 s stall. A key press at 5000 ms, handed over at once, waits the whole 700 ms.
    openai_server.script(
        Reply(text=["Sure."], first_delay_s=1.5), Reply(text=["Pressed."], first_delay_s=0.2)
    )
    speech = SpeechInput(b"hello", 0.0, 800.0, speech_end_ms=200.0)
    call = ScriptedCall([speech, DtmfInput("5", 5000.0)])
    provider = OpenAICompatibleProvider(base_url=openai_server.openai_base_url, model="stand-in-1")
    s = settings(filler_after_ms=700, max_dead_air_ms=5000)
    config = LlmDialogConfig(s, ToolConfig(), max_no_input=0)
    try:
        with pytest.raises(CallEnding):
            await run_llm_dialog(call, provider, EchoTranscriber(), config, system_prompt="Hi.")
    finally:
        await provider.close()
    assert call.said[:3] == [FILLER, "Sure.", "Pressed."]
    first, second = call.events_of("llm_round")[:2]
    assert first["fillers"] == 1 and first["waited_ms"] >= 600
    assert second["fillers"] == 0 and second["waited_ms"] < 700
