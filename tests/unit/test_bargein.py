"""The barge-in controller's decisions: pause on onset, interrupt on confirmation, resume on noise,
per policy and ignore window. Real Playback (nothing released), real call clock, real metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ivr_bridge.call.bargein import BargeInController, Prompt
from ivr_bridge.call.clock import CallClock
from ivr_bridge.call.control import BargeInMode, BargeInPolicy
from ivr_bridge.call.playback import Playback
from ivr_bridge.call.utterance import Utterance
from ivr_bridge.metrics import BridgeMetrics


class Harness:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.playback = Playback(self._send, "MZ" + "1" * 32)
        self.metrics = BridgeMetrics()
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.cancelled: list[Utterance] = []
        self.controller = BargeInController(
            playback=self.playback,
            clock=CallClock(),
            metrics=self.metrics,
            cancel_synthesis=self._cancel,
            record_event=lambda kind, **fields: self.events.append((kind, fields)),
        )

    async def _send(self, event: str, text: str) -> None:
        self.sent.append(event)

    async def _cancel(self, utterance: Utterance) -> None:
        self.cancelled.append(utterance)

    def prompt(self, mode: BargeInMode = "any", ignore_first_ms: int = 0) -> Prompt:
        utterance = Utterance(1, "For billing, press one.")
        utterance.bytes_received = 8000
        return self.controller.begin(utterance, BargeInPolicy(mode, ignore_first_ms))

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    @property
    def paused(self) -> bool:
        return self.playback._paused


@pytest.fixture
async def harness() -> Any:
    h = Harness()
    task = asyncio.create_task(h.controller.run())
    yield h
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_confirmed_speech_pauses_then_interrupts_and_resumes_release(harness) -> None:
    prompt = harness.prompt("any")
    harness.controller.on_onset(1000)
    assert harness.paused
    harness.controller.on_confirmed(1000)
    # As the conductor does: the prompt settles (cut), then the dialog finishes it.
    await asyncio.wait_for(asyncio.shield(prompt.utterance.done), 1)
    await asyncio.wait_for(harness.controller.finish(prompt), 1)
    assert prompt.utterance.interrupted and prompt.interrupted_by == "speech"
    assert prompt.utterance.done.done()
    assert harness.cancelled == [prompt.utterance]
    assert not harness.paused  # the next prompt must be able to play
    assert harness.metric("ivr_barge_ins_total", by="speech") == 1
    kind, fields = harness.events[-1]
    assert kind == "barge_in" and fields["onset_ms"] == 1000 and fields["heard_text"] == ""


async def test_noise_resumes_and_counts_a_false_interruption(harness) -> None:
    prompt = harness.prompt("any")
    harness.controller.on_onset(1000)
    harness.controller.on_abandoned(1000, 1240)
    await settle()
    assert not harness.paused and not prompt.utterance.interrupted
    assert harness.metric("ivr_false_interruptions_total") == 1
    assert harness.events == [("barge_in_abandoned", {"onset_ms": 1000, "paused_ms": 240})]


@pytest.mark.parametrize("mode", ["none", "dtmf"])
async def test_speech_neither_pauses_nor_interrupts_a_prompt_it_may_not_cut(
    harness, mode: BargeInMode
) -> None:
    prompt = harness.prompt(mode)
    harness.controller.on_onset(1000)
    assert not harness.paused
    harness.controller.on_confirmed(1000)
    await settle()
    assert not prompt.utterance.interrupted and not prompt.utterance.done.done()


@pytest.mark.parametrize(("mode", "cuts"), [("any", True), ("dtmf", True), ("speech", False)])
async def test_a_digit_interrupts_per_policy(harness, mode: BargeInMode, cuts: bool) -> None:
    prompt = harness.prompt(mode)
    harness.controller.on_dtmf(500)
    await settle()
    assert prompt.utterance.interrupted is cuts
    assert prompt.interrupted_by == ("dtmf" if cuts else None)


async def test_the_ignore_window_protects_the_opening_words(harness) -> None:
    prompt = harness.prompt("any", ignore_first_ms=1000)
    prompt.utterance.bytes_played = 8 * 600  # the caller has heard 600 ms of it
    harness.controller.on_onset(700)
    assert not harness.paused
    harness.controller.on_confirmed(700)
    await settle()
    assert not prompt.utterance.interrupted
    prompt.utterance.bytes_played = 8 * 1000
    harness.controller.on_dtmf(1100)
    await settle()
    assert prompt.utterance.interrupted and prompt.interrupted_by == "dtmf"


async def test_nothing_to_interrupt_after_the_prompt_ended(harness) -> None:
    prompt = harness.prompt("any")
    harness.controller.on_onset(1000)
    prompt.utterance.synthesis_complete = True
    prompt.utterance.bytes_played = prompt.utterance.bytes_received
    prompt.utterance.settle()  # it finished playing while the caller was starting to talk
    harness.controller.on_confirmed(1000)
    await settle()
    assert not harness.paused and not prompt.utterance.interrupted
    assert harness.sent == [] and harness.cancelled == []


async def test_the_bot_is_audible_while_a_prompt_has_audio_at_twilio(harness) -> None:
    """What the listener asks before it wants silero's second opinion on an onset."""
    assert not harness.controller.bot_audible  # no prompt
    prompt = harness.prompt("none")  # audible even when speech cannot cut it
    assert not harness.controller.bot_audible  # nothing sent yet: the caller hears nothing
    harness.playback.ledger.next_mark(800, prompt.utterance, expected_end=0.0)
    assert harness.controller.bot_audible
    # All of it played, the next sentence not sent yet: a pause inside the prompt, still it.
    [chunk] = harness.playback.ledger.assume_played_until(1.0)  # its mark came back
    prompt.utterance.bytes_played = chunk.n_bytes
    assert not harness.playback.audible and harness.controller.bot_audible
    prompt.interrupted_by = "dtmf"
    assert not harness.controller.bot_audible  # being cut: nothing left to protect
