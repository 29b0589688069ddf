"""The call clock: media time, never back, never a jump no phone line makes."""

from __future__ import annotations

import asyncio

from ivr_bridge.call.clock import MAX_JUMP_MS, CallClock


async def test_a_far_future_timestamp_does_not_fire_pending_timeouts() -> None:
    clock = CallClock()
    clock.on_media(100)
    timeout = asyncio.create_task(clock.sleep(5000))
    await asyncio.sleep(0)
    assert clock.on_media(10**12) == 120  # one frame later, not thirty years
    await asyncio.sleep(0)
    assert not timeout.done()
    assert clock.jumps_refused == 1
    for t in range(140, 5200, 20):  # the line goes on; time passes as it really does
        clock.on_media(t)
    await asyncio.wait_for(timeout, 1)
    assert clock.now_ms() == 5180


def test_ordinary_gaps_and_late_frames_are_kept_in_order() -> None:
    clock = CallClock()
    assert clock.on_media(100) == 100
    assert clock.on_media(100 + MAX_JUMP_MS) == 100 + MAX_JUMP_MS  # lost frames: fine
    assert clock.on_media(50) == 100 + MAX_JUMP_MS  # out of order: the clock never goes back
