"""Turn-taking measured from the audio the caller heard, for any agent, marks or not.

Other people's bots send no marks, send 20 ms or 1 s frames, pace faster than real time, never
send ``clear`` or send it without marks. None of that changes what a person on the line hears,
and the recorder keeps exactly that: the bot's audio as it played out of the jitter buffer, on
the caller's clock. So every figure here comes from the heard channel and the caller's own
turns, never from when messages arrived:

- **yield**: the caller starts talking over the bot → the bot's audio stops being heard;
- **talk-over**: the bot *starts* an utterance while the caller is talking (how long they overlap);
- **dead air**: both sides silent, between the bot's first words and the end of the call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ivr_bridge.sim.scenario.recording import CallRecorder


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0-100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def turn_latencies(recorder: CallRecorder) -> list[float]:
    """Caller end of turn → first bot audio, for every turn the bot answered."""
    return [t.latency_ms for t in recorder.turns if t.latency_ms is not None]


@dataclass(frozen=True, slots=True)
class Gap:
    start_ms: float
    end_ms: float

    @property
    def duration_ms(self) -> float:
        return self.end_ms - self.start_ms


def yields(recorder: CallRecorder) -> list[float | None]:
    """Per barge-in while the bot was heard: caller onset → the bot's audio stopped (call ms);
    None when the bot talked on to the end of the call."""
    out: list[float | None] = []
    for barge in recorder.events_of("barge_in"):
        onset = float(barge["t_ms"])
        # Inclusive at the end: the bot heard in the frame just before the onset counts, and
        # if its audio stopped right there, it yielded at once.
        speaking = next((u for u in recorder.utterances if u.start_ms <= onset <= u.end_ms), None)
        if speaking is None:
            continue  # the bot was already quiet: nothing to yield
        if speaking.end_ms >= recorder.line_end_ms - 1:
            out.append(None)
        else:
            out.append(round(speaking.end_ms - onset, 1))
    return out


def talk_overs(recorder: CallRecorder) -> list[float]:
    """For each bot utterance that began while the caller was talking: the overlap (call ms)."""
    out = []
    for u in recorder.utterances:
        for turn in recorder.turns:
            if turn.kind == "press" or turn.end_ms is None:
                continue
            if turn.start_ms < u.start_ms < turn.end_ms:
                out.append(round(min(u.end_ms, turn.end_ms) - u.start_ms, 1))
                break
    return out


def dead_air(recorder: CallRecorder) -> list[Gap]:
    """Stretches with neither side heard, from the bot's first audio to the end of the line."""
    if not recorder.utterances:
        return []
    busy = [(u.start_ms, u.end_ms) for u in recorder.utterances]
    busy += [(t.start_ms, t.end_ms) for t in recorder.turns if t.end_ms is not None]
    busy.sort()
    gaps = []
    reached = recorder.utterances[0].start_ms
    for start, end in busy:
        if start > reached:
            gaps.append(Gap(reached, start))
        reached = max(reached, end)
    if recorder.line_end_ms > reached:
        gaps.append(Gap(reached, recorder.line_end_ms))
    return gaps
