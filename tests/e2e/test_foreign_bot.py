"""The tester measures other people's bots from the audio the caller heard: a Media Streams bot
that sends no marks, paces its own 20 ms or 1 s frames, and stops or ``clear``s when talked
over. Its latency and yield, as the tester reports them, agree with the bot's own log within
40 ms; a run whose caller fell behind its clock is inconclusive, never a failure."""

from __future__ import annotations

import asyncio

import pytest

from ivr_bridge.sim import CallerScript, CallResult, run_call
from ivr_bridge.sim.scenario.audio_timing import yields
from ivr_bridge.sim.twilio.line import LineSettings, NoiseSettings
from tests.e2e.foreign_bot import BotScript, ForeignBot

AGREE_MS = 40.0
CALLER = CallerScript.model_validate(
    {
        "name": "talk over the greeting, then wait for the answer",
        "steps": [
            {"barge_in": {"after_ms": 700, "say": "Stop, please."}},
            "wait_for_bot",
            "hangup",
        ],
        "expect": {"max_yield_ms": 1500, "max_turn_latency_ms": 2000, "max_talk_over_ms": 0},
    }
)
BOTS = {
    "20 ms frames, stops": BotScript(frame_ms=20, on_barge_in="stop"),
    "1 s frames, stops (its second plays out)": BotScript(frame_ms=1000, on_barge_in="stop"),
    "20 ms frames, clear without marks": BotScript(frame_ms=20, on_barge_in="clear"),
}


async def call(script: BotScript) -> tuple[ForeignBot, CallResult]:
    bot = ForeignBot(script)
    await bot.start()
    try:
        result = await run_call(voice_url=None, ws_url=bot.url, script=CALLER, auth_token=None)
    finally:
        await bot.close()
    return bot, result


async def test_latency_and_yield_agree_with_the_bots_own_log() -> None:
    runs = await asyncio.gather(*(call(script) for script in BOTS.values()))
    for name, (bot, result) in zip(BOTS, runs, strict=True):
        if result.lag_ms > 20:
            pytest.skip(f"inconclusive: the caller fell {result.lag_ms:.0f} ms behind ({name})")
        greeting, reply = bot.log.utterances
        heard = result.utterances
        assert len(heard) == 2, (name, heard)
        [turn] = result.turns
        [onset] = [e["t_ms"] for e in result.recorder.events_of("barge_in")]
        # Yield: caller onset → the greeting stops being heard.
        [measured_yield] = yields(result.recorder)
        assert measured_yield is not None
        assert measured_yield == pytest.approx(greeting.end_ms - onset, abs=AGREE_MS), name
        # Latency: caller end of turn → the reply is heard.
        assert turn.latency_ms == pytest.approx(reply.start_ms - turn.end_ms, abs=AGREE_MS), name
        assert heard[1].start_ms == pytest.approx(reply.start_ms, abs=AGREE_MS), name
        assert result.passed, (name, result.expectations)
    # A bot that sent a second ahead cannot take it back without a clear: the caller hears the
    # rest of the second it had sent, so the greeting heard is whole seconds of the 2.4 s it had.
    # (Not "later than the 20 ms bot by N ms": that depends on where in its second the caller
    # spoke and how long detection took on a busy machine.)
    greeting_heard = runs[1][1].utterances[0]
    seconds = (greeting_heard.end_ms - greeting_heard.start_ms) / 1000
    assert round(seconds) in (1, 2), seconds
    assert seconds == pytest.approx(round(seconds), abs=AGREE_MS / 1000), seconds


async def test_a_jittery_noisy_line_reaches_the_bot_late_in_order_and_noisy() -> None:
    persona = CALLER.caller.model_copy(
        update={
            "noise": NoiseSettings(kind="pink", snr_db=20),
            "line": LineSettings(jitter_ms=80, loss_pct=5),
        }
    )
    script = CALLER.model_copy(update={"caller": persona})
    bot = ForeignBot(BotScript())
    await bot.start()
    try:
        result = await run_call(
            voice_url=None, ws_url=bot.url, script=script, auth_token=None, seed=4
        )
    finally:
        await bot.close()
    if result.lag_ms > 20:
        pytest.skip(f"inconclusive: the caller fell {result.lag_ms:.0f} ms behind")
    stamps = [stamp for _, stamp in bot.log.arrivals]
    assert stamps == sorted(stamps)  # held back, never reordered
    offset = min(wall - stamp for wall, stamp in bot.log.arrivals)
    late = [wall - stamp - offset for wall, stamp in bot.log.arrivals]
    assert max(late) > 40  # frames really were held back ...
    # ... by the persona's jitter and a 20 ms tick, plus a real-time floor for a busy machine
    assert max(late) < 80 + 20 + 200
    [line] = result.recorder.events_of("line")
    assert line["frames_lost"] > 0
    # The noise does not make the caller talk: the bot heard one barge-in, as scripted.
    assert len(bot.log.caller_onsets_ms) == 1
