"""Turn latency benchmark (not a test): caller stops → first bot audio, whole and piece by piece.

The successor of ``tests/e2e/measure_llm_latency.py`` (removed). Real bridge, embedded speech
server, embedded recognisers (pocketsphinx + whisper ``tiny.en``), simulated callers at real time
(speed 1: latency is wall time the caller spends in silence). Scenarios:

- ``menu``: a spoken menu answer (``benchmarks/flows/latency_menu.yaml``), several caller voices;
- ``keys``: a keyed menu answer and a four-digit entry that ends on its last key;
- ``llm``: LLM turns (``flows/llm_agent.yaml``) with a stand-in model answering in 300 ms;
- ``pauses``: LLM turns in which the caller pauses 400 ms mid-sentence: each reply that began
  before the caller had finished is a cut-off (counted; the goal is none).

The total is the simulated caller's own measure (end of its audio → first bot audio it heard);
the pieces are the bridge's ``turn_timing`` events (``ivr_bridge.call.turn_timing``). A call
whose caller fell behind real time is reported as inconclusive and left out.

    .venv/bin/python benchmarks/bench_turn_latency.py                 # all, ~3 minutes
    .venv/bin/python benchmarks/bench_turn_latency.py --only menu --calls 8
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from structlog.testing import capture_logs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ivr_bridge.config import Settings  # noqa: E402
from ivr_bridge.dialog.services import FlowServices  # noqa: E402
from ivr_bridge.llm.settings import LLMSettings  # noqa: E402
from ivr_bridge.recognition import get_transcriber  # noqa: E402
from ivr_bridge.server.app import RunningBridge, start_bridge  # noqa: E402
from ivr_bridge.sim import parse_script, run_call  # noqa: E402
from ivr_bridge.sim.scenario.result import CallResult  # noqa: E402
from ivr_bridge.speechserver.app import start_speech_server  # noqa: E402
from ivr_bridge.stt import SttSettings, get_turn_transcriber  # noqa: E402
from tests.llm.standin_llm import OpenAIStandIn, Reply  # noqa: E402

AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
VOICES = ("neural-low", "neural-high", "neural-deep", "neural-warm", "neural-brisk")
MENU_WORDS = ("billing", "support", "check my order", "technical support", "pay my bill")
LLM_TURNS = (
    "I want to check my order",
    "when will it arrive",
    "can I change the address",
    "thank you very much",
)
PAUSED_TURNS = (
    ("I'd like to", "check on my order"),
    ("my account number is one two", "three four"),
    ("can you tell me if", "the store is open"),
    ("I want to change", "my delivery address"),
)
PHASES = ("endpointing", "recognition", "reply", "tts", "release", "total")


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def show(name: str, values: Sequence[float]) -> None:
    if not values:
        print(f"  {name:28s} (none)")
        return
    print(
        f"  {name:28s} p50 {statistics.median(values):6.0f} ms   p95 {pct(values, 95):6.0f} ms"
        f"   n={len(values)}"
    )


def phases_of(logs: Sequence[Any]) -> dict[str, list[float]]:
    timings = [e for e in logs if e.get("event") == "turn timing"]
    return {p: [e[f"{p}_ms"] for e in timings if f"{p}_ms" in e] for p in PHASES}


async def call(bridge: RunningBridge, script_text: str, voice: str) -> CallResult:
    script = parse_script(f"caller:\n  voice: {voice}\n{script_text}", "bench.yaml")
    return await run_call(
        voice_url=bridge.base_url + "/twilio/voice",
        ws_url=None,
        script=script,
        auth_token=AUTH_TOKEN,
        speed=1.0,
    )


def _turns(result: CallResult, kind: str) -> list[float]:
    return [t.latency_ms for t in result.turns if t.kind == kind and t.latency_ms is not None]


async def bench_flow(speech: Any, calls: int, only: set[str]) -> None:
    bridge = await start_bridge(
        Settings(
            twilio_auth_token=SecretStr(AUTH_TOKEN),
            lmnt_base_url=speech.base_url,
            lmnt_api_key=SecretStr("k"),
            flows_dir=ROOT / "benchmarks" / "flows",
            flow="latency_menu.yaml",
            port=0,
        )
    )
    spoken: list[float] = []
    keyed: list[float] = []
    inconclusive = 0
    try:
        with capture_logs() as logs:
            for n in range(calls):
                words = [MENU_WORDS[(n + i) % len(MENU_WORDS)] for i in range(4)]
                steps = ["steps:", "  - wait_for_bot"]
                if "menu" in only:
                    for word in words:
                        steps += [f'  - say: "{word}"', "  - wait_for_bot"]
                if "keys" in only:
                    steps += ['  - press: "2"', "  - wait_for_bot", '  - press: "4"']
                    steps += ["  - wait_for_bot", '  - press: "1234"', "  - wait_for_bot"]
                steps += ['  - press: "9"', "  - wait_for_bot"]
                result = await call(bridge, "\n".join(steps) + "\n", VOICES[n % len(VOICES)])
                if result.inconclusive:
                    inconclusive += 1
                    continue
                spoken += _turns(result, "say")
                keyed += _turns(result, "press")[:-1]  # the last one is the goodbye
    finally:
        await bridge.stop()
    phases = phases_of(logs)
    if "menu" in only:
        print("\nScripted flow, spoken menu answers (embedded recognisers):")
        show("caller end → first bot audio", spoken)
    if "keys" in only:
        print("\nScripted flow, keyed menu answers and a 4-digit entry:")
        show("last key → first bot audio", keyed)
    print("  pieces (bridge, all turns of the flow calls):")
    for phase in PHASES:
        show(phase, phases[phase])
    early = sum(1 for e in logs if e.get("event") == "early endpoint")
    print(f"  utterances ended early: {early}; inconclusive calls: {inconclusive}")


async def bench_llm(speech: Any, calls: int, *, paused: bool) -> None:
    model = OpenAIStandIn()
    await model.start()
    # Every reply is new text, so the speech server renders it (no prompt-cache hit).
    subjects = ("your order", "the delivery", "your address", "the refund", "your account")
    replies = [
        Reply(text=[f"Sure, reply {n + 1},", f" about {subjects[n % 5]}."], first_delay_s=0.3)
        for n in range(200)
    ]
    model.script(*replies)
    bridge = await start_bridge(
        Settings(
            twilio_auth_token=SecretStr(AUTH_TOKEN),
            lmnt_base_url=speech.base_url,
            lmnt_api_key=SecretStr("k"),
            flows_dir=ROOT / "flows",
            flow="llm_agent.yaml",
            port=0,
        )
    )
    transcriber = get_turn_transcriber(SttSettings(stt="whisper"))
    bridge.state.flow_services = FlowServices(
        llm_settings=lambda: LLMSettings(
            model="stand-in-1", base_url=model.openai_base_url, api_key=SecretStr("sk-x")
        ),
        turn_transcriber=lambda: transcriber,
    )
    latencies: list[float] = []
    cut_offs = 0
    cut_at: list[str] = []
    turns = 0
    inconclusive = 0
    try:
        with capture_logs() as logs:
            for n in range(calls):
                steps = ["steps:", "  - wait_for_bot"]
                if paused:
                    for first, rest in PAUSED_TURNS:
                        steps += [f'  - say: "{first}"', "  - silence: 400", f'  - say: "{rest}"']
                        steps += ["  - wait_for_bot"]
                else:
                    for text in LLM_TURNS:
                        steps += [f'  - say: "{text}"', "  - wait_for_bot"]
                steps += ["  - hangup"]
                result = await call(bridge, "\n".join(steps) + "\n", VOICES[n % len(VOICES)])
                if result.inconclusive:
                    inconclusive += 1
                    continue
                said = [t for t in result.turns if t.kind == "say"]
                if paused:
                    for half, rest_half in zip(said[::2], said[1::2], strict=False):
                        turns += 1
                        if half.latency_ms is not None:
                            cut_offs += 1  # the bot spoke between the halves of a sentence
                            cut_at.append(f"{VOICES[n % len(VOICES)]}: {half.detail!r}")
                        if rest_half.latency_ms is not None:
                            latencies.append(rest_half.latency_ms)
                else:
                    latencies += [t.latency_ms for t in said if t.latency_ms is not None]
    finally:
        await bridge.stop()
        await model.stop()
    phases = phases_of(logs)
    kept = sum(1 for e in logs if e.get("event") == "speculative reply" and e["result"] == "kept")
    dropped = sum(
        1 for e in logs if e.get("event") == "speculative reply" and e["result"] == "dropped"
    )
    requests = len(model.bodies)
    if paused:
        print("\nLLM turns with a 400 ms pause mid-sentence (stand-in model, 300 ms):")
        print(f"  cut-offs (answered inside the pause): {cut_offs} of {turns} sentences")
        for where in cut_at:
            print(f"    cut after {where}")
    else:
        print("\nLLM turns (stand-in model answering in 300 ms, whisper tiny.en):")
    show("caller end → first bot audio", latencies)
    for phase in PHASES:
        show(phase, phases[phase])
    print(
        f"  speculative replies kept {kept}, dropped {dropped}; model requests {requests}; "
        f"inconclusive calls: {inconclusive}"
    )


async def main(args: argparse.Namespace) -> None:
    only = set(args.only or ("menu", "keys", "llm", "pauses"))
    print("warming the recognisers and the voice…", flush=True)
    await get_transcriber().warm_up()
    speech = await start_speech_server(host="127.0.0.1", port=0)
    try:
        if only & {"menu", "keys"}:
            await bench_flow(speech, args.calls, only)
        if "llm" in only:
            await bench_llm(speech, args.calls, paused=False)
        if "pauses" in only:
            await bench_llm(speech, args.calls, paused=True)
    finally:
        await speech.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5, help="calls per scenario (default 5)")
    parser.add_argument(
        "--only", action="append", choices=("menu", "keys", "llm", "pauses"), help="repeatable"
    )
    asyncio.run(main(parser.parse_args()))
