"""Hardening, end to end: what a failing peer, a lossy line or an attacker must not cost a call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ivr_bridge.call.app import DialogApp
from ivr_bridge.call.control import BargeInPolicy, CallControl
from tests.e2e.conftest import AUTH_TOKEN
from tests.e2e.twilio_peer import run_session

PROMPT = (
    "Thank you for calling. Your order has shipped and will arrive on Thursday. "
    "If you need anything else, please call us again."
)


async def _say_prompt(call: CallControl) -> None:
    await call.say(PROMPT, barge_in=BargeInPolicy("none"))
    await call.hangup()


async def test_lost_mark_echoes_never_slow_playback_below_real_time(
    make_bridge: Callable[..., Any],
) -> None:
    """A Twilio whose mark echoes never arrive must still hear the prompt at real time (it used
    to come in 300 ms bursts every ~1.6 s: a 7.7 s greeting took 41.8 s), paced, not dumped."""
    bridge = await make_bridge(apps={"prompt": lambda p: DialogApp(_say_prompt, name="prompt")})
    session = await run_session(
        bridge.base_url, AUTH_TOKEN, parameters={"app": "prompt"}, echo_marks=False
    )
    assert session.closed_by_server
    audio_s = len(session.audio) / 8000
    assert audio_s > 4.0, "the whole prompt"
    first, last = session.media_arrivals[0][0], session.media_arrivals[-1][0]
    spread_s = last - first
    # Real time: the last frame goes out about one lead (300 ms) before the audio ends. Floor:
    # a loaded machine may release late, but nowhere near 5x slower.
    assert spread_s <= audio_s * 1.25 + 1.0, (spread_s, audio_s)
    assert spread_s >= audio_s - 1.0, (spread_s, audio_s)  # paced, not all sent at once
