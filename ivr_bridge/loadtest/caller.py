"""One load-test caller: the script it follows and the few numbers kept from its call.

The script loops until the call's duration is up: the caller either interrupts the bot's prompt
by speaking (then presses 1 to hear it again) or lets it play out and presses 1. So every call
keeps the bot talking and exercises barge-in (onset → ``clear``) and DTMF → first audio.

Underruns are counted by the bridge, which knows when Twilio ran dry inside an utterance
(``ivr_playback_underruns_total``). The caller only knows the gaps it heard, including the
natural pause between two prompts, so it reports them as *caller-heard gaps*, not underruns.

Stale frames are counted from the marks, which relies on the bridge's mark naming
(``ivr.<generation>.<seq>``, ``ivr_bridge/call/marks.py``): every media frame is followed by its
mark, and the generation goes up on every ``clear``. A mark received after a ``clear`` whose
generation is not newer than the marks before that clear belongs to the cut prompt, and so does
the frame before it. Fine for our own load test; another server's marks are simply not counted.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ivr_bridge.call.marks import MARK_PREFIX
from ivr_bridge.sim import CallerScript, CallResult
from ivr_bridge.sim.scenario.script import (
    BargeIn,
    BargeInStep,
    CallerSettings,
    PressStep,
    SilenceStep,
    Step,
    WaitForBot,
    WaitForBotStep,
)

INTERRUPTION = "Sorry, wait a moment please."
"""What the caller says over the bot (about 1.5 s of espeak speech)."""
FRAME_MS = 20
HANGUP_MARGIN_MS = 1000.0
"""A barge-in this close to the caller hanging up may not see its clear; not counted."""


def build_script(
    duration_s: float, barge_in_rate: float, rng: random.Random, *, name: str = "load"
) -> CallerScript:
    """Enough interrupt-or-listen cycles to fill ``duration_s``; the caller hangs up then."""
    steps: list[Step] = []
    # Shortest cycle: ~1 s into the prompt, 1.5 s of speech, a press: > 2 s. Over-provision.
    for _ in range(max(2, int(duration_s / 2) + 2)):
        if rng.random() < barge_in_rate:
            after = rng.randint(800, 3000)
            steps.append(BargeInStep(barge_in=BargeIn(after_ms=after, say=INTERRUPTION)))
            steps.append(SilenceStep(silence=rng.randint(200, 600)))
        else:
            steps.append(WaitForBotStep(wait_for_bot=WaitForBot(quiet_ms=400, timeout_ms=60_000)))
        steps.append(PressStep(press="1"))
    caller = CallerSettings(max_duration_ms=int(duration_s * 1000))
    return CallerScript(name=name, caller=caller, steps=steps)


@dataclass(slots=True)
class CallSummary:
    """What the aggregate needs from one call (small and picklable: it crosses processes)."""

    index: int
    failed: str | None = None
    """Why the call counts as failed; None when it ran to its end."""
    call_s: float = 0.0
    caller_heard_gaps: int = 0
    """Silences the caller heard between bits of bot audio (< 500 ms, no clear between): late
    audio *and* the natural pauses between prompts. Underruns proper come from the bridge."""
    caller_heard_gap_ms: float = 0.0
    stale_frames: int = 0
    """Media frames of a cleared prompt received after its ``clear`` (from the marks)."""
    barge_ins: int = 0
    barge_ins_without_clear: int = 0
    barge_in_clear_ms: list[float] = field(default_factory=list)
    dtmf_first_audio_ms: list[float] = field(default_factory=list)
    first_audio_ms: float | None = None
    """Stream start → the first bot audio the caller heard (line clock)."""
    media_sent: int = 0
    media_received: int = 0
    protocol_errors: int = 0
    max_tick_lag_ms: float = 0.0
    late_ticks: int = 0


def _mark_generation(name: object) -> int | None:
    """``ivr.<generation>.<seq>`` → generation; None for a mark not named by our bridge."""
    if not isinstance(name, str):
        return None
    parts = name.split(".")
    if len(parts) != 3 or parts[0] != MARK_PREFIX or not parts[1].isdigit():
        return None
    return int(parts[1])


def count_stale_frames(events: Iterable[dict[str, Any]]) -> int:
    """Media frames received after a ``clear`` that belong to a prompt it cut.

    ``events`` in receipt order (``mark_received`` with its ``name``, ``clear``). Each of our
    media frames is followed by its mark, so a mark of a generation the clear ended, received
    after it, stands for one stale frame."""
    newest = -1
    """Highest generation seen so far."""
    cleared_upto = -1
    """Every generation up to this one was ended by a clear already received."""
    stale = 0
    for event in events:
        kind = event.get("event")
        if kind == "clear":
            cleared_upto = newest
        elif kind == "mark_received":
            generation = _mark_generation(event.get("name"))
            if generation is None:
                continue
            if generation <= cleared_upto:
                stale += 1
            newest = max(newest, generation)
    return stale


def summarize(index: int, result: CallResult) -> CallSummary:
    summary = CallSummary(index=index)
    stats = result.stats
    verdict = result.verdict
    if stats is None:
        summary.failed = f"no stream: {verdict.describe()}"
        return summary
    summary.media_sent = stats.media_sent
    summary.media_received = stats.media_received
    summary.protocol_errors = stats.protocol_errors
    summary.caller_heard_gaps = stats.underruns
    summary.caller_heard_gap_ms = stats.underrun_ms
    summary.stale_frames = count_stale_frames(result.events)
    summary.max_tick_lag_ms = stats.max_tick_lag_ms
    summary.late_ticks = stats.late_ticks
    closed = [e for e in result.events if e["event"] == "stream_closed"]
    summary.call_s = (closed[-1]["t_ms"] if closed else stats.media_sent * FRAME_MS) / 1000
    if verdict.kind == "error":
        summary.failed = verdict.describe()
    elif verdict.target != "max_duration":
        summary.failed = f"call ended early ({verdict.describe()}) at {summary.call_s:.1f} s"
    elif stats.protocol_errors:
        summary.failed = f"{stats.protocol_errors} protocol errors"
    elif stats.media_received == 0:
        summary.failed = "the bot never spoke"
    if result.utterances:
        summary.first_audio_ms = result.utterances[0].start_ms
    _barge_in_figures(result, summary)
    for turn in result.turns:
        if turn.kind == "press" and turn.latency_ms is not None:
            summary.dtmf_first_audio_ms.append(turn.latency_ms)
    return summary


def _barge_in_figures(result: CallResult, summary: CallSummary) -> None:
    """Onset → clear per barge-in (a barge-in with no clear before the next press has none)."""
    barge_ins = [e["t_ms"] for e in result.events if e["event"] == "barge_in"]
    clears = [e["t_ms"] for e in result.events if e["event"] == "clear"]
    presses = [t.start_ms for t in result.turns if t.kind == "press"]
    summary.barge_ins = len(barge_ins)
    for at in barge_ins:
        nxt = next((c for c in clears if c >= at), None)
        window_end = next((p for p in presses if p > at), float("inf"))
        if nxt is None or nxt > window_end:
            if at < result.recorder.line_end_ms - HANGUP_MARGIN_MS:
                summary.barge_ins_without_clear += 1
            continue
        summary.barge_in_clear_ms.append(nxt - at)
