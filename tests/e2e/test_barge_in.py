"""Barge-in end to end: real bridge, real speech server (slowed down), the simulated caller.

The speech server injects time-to-first-audio and paces its audio, so the prompt's audio is
still being synthesised and is in flight when the caller interrupts. Each test runs a small
dialog through the ``CallControl`` API (standing in for a flow step with a barge-in policy).
"""

from __future__ import annotations

import math
import random
import struct
import wave
from pathlib import Path
from typing import Any

import pytest

from ivr_bridge.call.app import DialogApp
from ivr_bridge.call.control import BargeInPolicy, CallControl, SayResult
from ivr_bridge.call.heard import heard_words
from ivr_bridge.call.inputs import DtmfInput, SpeechInput
from ivr_bridge.server.app import RunningBridge
from ivr_bridge.sim import parse_script, run_call
from ivr_bridge.sim.scenario.result import CallResult
from ivr_bridge.speech.lmnt.client import connect_lmnt
from ivr_bridge.speech.session import FlushComplete, SpeechTimestamps, WordTiming
from tests.e2e.conftest import AUTH_TOKEN

SPEED = 4.0
MENU = (
    "For billing questions, say billing or press one. For technical support, say support "
    "or press two. For anything else, please stay on the line."
)
REPLY = "Thank you."


class DialogProbe:
    """A dialog for the bridge: say the menu with a policy, gather one input, answer, hang up."""

    def __init__(self, policy: BargeInPolicy, *, gather: bool = True) -> None:
        self.policy = policy
        self.gather = gather
        self.results: list[SayResult] = []
        self.inputs: list[Any] = []
        self.call: Any = None

    def app(self) -> DialogApp:
        return DialogApp(self.run, name="barge-in-probe")

    async def run(self, call: CallControl) -> None:
        self.call = call
        self.results.append(await call.say(MENU, barge_in=self.policy))
        if self.gather:
            while (item := await call.next_input(4000)) is not None:
                if isinstance(item, SpeechInput | DtmfInput):
                    self.inputs.append(item)
                    break
            self.results.append(await call.say(REPLY))
        await call.hangup()

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.call.events if e["kind"] == kind]


@pytest.fixture
async def slow_speech(speech_server: Any) -> Any:
    speech_server.config.first_audio_delay_ms = 60  # 240 ms of call time at SPEED
    speech_server.config.realtime_factor = 0.2  # 0.8x real time in call time: always in flight
    return speech_server


async def _call(bridge: RunningBridge, probe: DialogProbe, steps: str) -> CallResult:
    bridge.state.apps.add("probe", lambda parameters: probe.app())
    script = parse_script(f"steps:\n{steps}", "barge_in_test.yaml", Path(__file__).parent)
    return await run_call(
        voice_url=bridge.base_url + "/twilio/voice?app=probe",
        ws_url=None,
        script=script,
        auth_token=AUTH_TOKEN,
        speed=SPEED,
    )


def _marks(result: CallResult) -> list[dict[str, Any]]:
    return [e for e in result.events if e["event"] == "mark_received"]


def _generation(mark: dict[str, Any]) -> int:
    return int(mark["name"].split(".")[1])


async def _word_timings(server: Any, text: str) -> list[WordTiming]:
    """The speech server's own word timestamps for ``text`` (synthesis is deterministic)."""
    session = await connect_lmnt(base_url=server.base_url, api_key="k", voice="heart")
    words: list[WordTiming] = []
    try:
        await session.send_text(text)
        await session.flush()
        async for event in session.events():
            if isinstance(event, SpeechTimestamps):
                words.extend(event.words)
            elif isinstance(event, FlushComplete):
                break
    finally:
        await session.close()
    return words


async def test_speech_barge_in_clears_at_once_and_the_words_still_count(
    bridge: RunningBridge, slow_speech: Any
) -> None:
    probe = DialogProbe(BargeInPolicy("any"))
    result = await _call(
        bridge,
        probe,
        '  - barge_in: {after_ms: 1500, say: "billing please"}\n  - wait_for_bot\n',
    )
    menu, reply = probe.results
    clears = [e for e in result.events if e["event"] == "clear"]
    assert len(clears) == 1, result.summary_table()
    assert menu.interrupted and menu.interrupted_by == "speech"
    assert not reply.interrupted

    # Zero stale frames: nothing of the cut generation after the clear, and nothing at all
    # until the reply, which the dialog only says once the caller's utterance has ended.
    clear_t = clears[0]["t_ms"]
    before = [m for m in _marks(result) if m["t_ms"] < clear_t]
    after = [m for m in _marks(result) if m["t_ms"] >= clear_t]
    cut_generation = _generation(before[-1])
    assert all(_generation(m) > cut_generation for m in after)
    caller_end = result.turns[0].end_ms
    assert caller_end is not None and after[0]["t_ms"] > caller_end + 300
    assert result.utterances[0].interrupted and result.utterances[1].start_ms > caller_end

    # Onset → clear: min speech (200 ms) plus a little, on the bridge's call clock (the
    # caller's media timestamps: no wall time in it). As the caller saw it, the clear arrives
    # later by the bridge's real processing time, times the speed: the run's slack.
    barge = probe.events("barge_in")[0]
    assert barge["clear_sent"] and barge["onset_to_clear_ms"] <= 260
    assert clear_t - result.turns[0].start_ms <= 400 + result.slack_ms

    # Cleared marks never count as played: the bridge's played_ms is what the caller heard, to
    # within the chunk that was playing when the clear arrived.
    assert result.stats is not None
    heard_ms = result.stats.bot_bytes_heard / 8 - reply.played_ms
    assert 0 <= heard_ms - menu.played_ms <= 120 + result.slack_ms, (heard_ms, menu.played_ms)
    assert menu.played_ms < 3000

    # The heard text is what the caller actually heard: between the words acknowledged as
    # played and the words audible at the clear, ± one word (a word counts once half played).
    timings = await _word_timings(slow_speech, MENU)
    acknowledged, audible = heard_words(timings, menu.played_ms), heard_words(timings, heard_ms)
    said = menu.heard_text.split()
    assert said and len(acknowledged) - 1 <= len(said) <= len(audible) + 1, (said, audible)
    truth = audible
    assert said[: min(len(said), len(truth))] == truth[: min(len(said), len(truth))]
    bare = [w.strip(",.").lower() for w in said]
    assert [w.strip(",.").lower() for w in MENU.split()][: len(bare)] == bare

    # The words that interrupted the menu reach the dialog's gather, first syllable included.
    (speech,) = probe.inputs
    assert isinstance(speech, SpeechInput)
    start = result.turns[0].start_ms
    assert speech.start_ms <= start + 40 and speech.end_ms >= caller_end - 60
    assert len(speech.pcm16) >= 2 * 8 * (caller_end - start - 100)


def _noise_wav(path: Path, ms: int, amplitude: int = 3000) -> Path:
    rng = random.Random(7)
    samples = [int(rng.gauss(0, amplitude)) for _ in range(8 * ms)]
    samples = [max(-32768, min(32767, s)) for s in samples]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return path


def _span_ms(result: CallResult) -> float:
    first, last = result.utterances[0], result.utterances[-1]
    return last.end_ms - first.start_ms


async def test_a_noise_burst_pauses_but_does_not_interrupt_and_the_prompt_resumes(
    bridge: RunningBridge, slow_speech: Any, tmp_path: Path
) -> None:
    _noise_wav(tmp_path / "noise.wav", 100)
    quiet = DialogProbe(BargeInPolicy("any"), gather=False)
    baseline = await _call(bridge, quiet, "  - wait_for_bot\n")
    probe = DialogProbe(BargeInPolicy("any"), gather=False)
    noisy = await _call(
        bridge,
        probe,
        f'  - barge_in: {{after_ms: 1500, play: "{tmp_path / "noise.wav"}"}}\n  - wait_for_bot\n',
    )
    (menu,) = probe.results
    assert not menu.interrupted and menu.heard_text == MENU
    assert not [e for e in noisy.events if e["event"] == "clear"]
    (abandoned,) = probe.events("barge_in_abandoned")  # it did pause, then resumed
    assert not probe.events("barge_in")
    # Nothing lost, nothing repeated: the caller heard exactly the prompt's audio, once.
    assert noisy.stats is not None and baseline.stats is not None
    assert noisy.stats.bot_bytes_heard == noisy.stats.bot_bytes_received == menu.played_ms * 8
    assert noisy.stats.bot_bytes_cleared == 0
    assert abs(menu.played_ms - quiet.results[0].played_ms) < 20  # synthesis varies by a few ms
    # No gap beyond the pause itself (and the bridge's real reaction time at this speed).
    slack = noisy.slack_ms + baseline.slack_ms
    assert _span_ms(noisy) - _span_ms(baseline) <= abandoned["paused_ms"] + 40 + slack


async def test_policy_none_lets_the_prompt_finish_while_the_caller_talks(
    bridge: RunningBridge, slow_speech: Any
) -> None:
    probe = DialogProbe(BargeInPolicy("none"))
    result = await _call(
        bridge,
        probe,
        '  - barge_in: {after_ms: 800, say: "billing please"}\n  - wait_for_bot\n',
    )
    menu, _ = probe.results
    assert not menu.interrupted and menu.heard_text == MENU
    assert not [e for e in result.events if e["event"] == "clear"]
    assert not result.utterances[0].interrupted
    # What the caller said is not lost: the next gather still gets it.
    assert isinstance(probe.inputs[0], SpeechInput)


@pytest.mark.parametrize(("mode", "interrupts"), [("any", True), ("dtmf", True), ("speech", False)])
async def test_dtmf_interrupts_under_any_and_dtmf_not_under_speech(
    bridge: RunningBridge, slow_speech: Any, mode: str, interrupts: bool
) -> None:
    probe = DialogProbe(BargeInPolicy(mode))  # type: ignore[arg-type]
    result = await _call(
        bridge, probe, '  - barge_in: {after_ms: 1000, press: "1"}\n  - wait_for_bot\n'
    )
    menu, _ = probe.results
    clears = [e for e in result.events if e["event"] == "clear"]
    assert menu.interrupted is interrupts
    assert len(clears) == int(interrupts)
    if interrupts:
        assert menu.interrupted_by == "dtmf"
        digit_t = next(e["t_ms"] for e in result.events if e["event"] == "digit")
        assert clears[0]["t_ms"] - digit_t <= 60 + result.slack_ms
        assert menu.played_ms < 2000
    else:
        assert menu.heard_text == MENU
    assert probe.inputs == [DtmfInput("1", probe.inputs[0].at_ms)]
    assert not math.isnan(probe.inputs[0].at_ms)
