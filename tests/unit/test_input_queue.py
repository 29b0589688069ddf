"""The caller's inputs between the line and the dialog: type-ahead, finish keys, bounds, time."""

from __future__ import annotations

import asyncio

from ivr_bridge.call.clock import CallClock
from ivr_bridge.call.input_queue import CallerInputs
from ivr_bridge.call.inputs import DtmfInput, SpeechInput, SpeechStarted


def _inputs() -> tuple[CallerInputs, CallClock]:
    clock = CallClock()
    return CallerInputs(clock, maxsize=4), clock


async def test_inputs_come_out_in_order_and_none_after_the_call_time_timeout() -> None:
    inputs, clock = _inputs()
    inputs.push(DtmfInput("1", 0))
    inputs.push(SpeechStarted(10))
    assert await inputs.next(1000) == DtmfInput("1", 0)
    assert await inputs.next(1000) == SpeechStarted(10)
    waiting = asyncio.create_task(inputs.next(500))
    await asyncio.sleep(0)
    clock.advance_to(400)
    await asyncio.sleep(0)
    assert not waiting.done()
    clock.advance_to(520)
    assert await waiting is None


async def test_an_input_arriving_while_the_dialog_waits_wakes_it() -> None:
    inputs, _ = _inputs()
    waiting = asyncio.create_task(inputs.next(None))
    await asyncio.sleep(0)
    inputs.push(DtmfInput("5", 3))
    assert await asyncio.wait_for(waiting, 1) == DtmfInput("5", 3)


def test_a_menu_drops_old_speech_but_keeps_keys_typed_ahead() -> None:
    inputs, _ = _inputs()
    inputs.push(SpeechInput(b"", 0, 500))
    inputs.push(DtmfInput("2", 600))
    inputs.push(SpeechStarted(700))
    assert inputs.keys_waiting()
    inputs.discard(keys=False)
    assert inputs.keys_waiting()
    inputs.discard()
    assert not inputs.keys_waiting()


async def test_the_queue_is_bounded_and_drops_the_oldest() -> None:
    inputs, _ = _inputs()
    for n, key in enumerate("123456"):
        inputs.push(DtmfInput(key, n))
    kept = []
    while inputs.keys_waiting():
        item = await inputs.next(0)
        assert isinstance(item, DtmfInput)
        kept.append(item.digit)
    assert kept == ["3", "4", "5", "6"]


def test_the_finish_key_after_a_full_entry_is_swallowed_once_and_only_in_time() -> None:
    inputs, clock = _inputs()
    clock.advance_to(1000)
    inputs.swallow_key("#", within_ms=3000)
    assert inputs.swallows("#", 1500)
    assert not inputs.swallows("#", 1600)  # only one: the next '#' is a real key
    inputs.swallow_key("#", within_ms=3000)
    assert not inputs.swallows("#", 5000)  # too late: the caller meant something else
    inputs.swallow_key("#", within_ms=3000)
    assert not inputs.swallows("1", 1200)  # another key ends the expectation
    assert not inputs.swallows("#", 1300)


def test_a_finish_key_already_waiting_is_removed_at_once() -> None:
    inputs, _ = _inputs()
    inputs.push(DtmfInput("#", 10))
    inputs.swallow_key("#", within_ms=3000)
    assert not inputs.keys_waiting()
    assert inputs.swallowed_keys == 1
