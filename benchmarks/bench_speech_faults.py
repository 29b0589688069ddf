"""Speech-path faults benchmark (not a test): how long a caller sits in silence when the speech
service misbehaves, in real time, measured on the simulated caller's line.

Each scenario runs ``--runs`` calls of an app that says three sentences, against the embedded
speech server with one fault injected, and reports the longest silence the caller heard while
the bot owed speech (up to the stream's close, after which Twilio says the apology at once):

- stall: the first session goes silent 1.5 s into its audio (socket open);
- silent: every session is connected and never sends a sound (ends in an apology);
- reset: resets are never acknowledged; the caller interrupts (gap: caller's end → reply);
- restart: the speech server is stopped 1.5 s in and back 2 s later;
- blackhole: the endpoint never accepts the session (time to the apology).

Goal: at most 2 s (restart: the outage plus a little).

    .venv/bin/python benchmarks/bench_speech_faults.py --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics

import structlog

from ivr_bridge.call.app import DialogApp
from ivr_bridge.call.control import BargeInPolicy, CallControl
from ivr_bridge.call.inputs import SpeechInput
from ivr_bridge.config import Settings
from ivr_bridge.server.app import start_bridge
from ivr_bridge.sim import CallResult, parse_script, run_call
from ivr_bridge.speechserver.app import start_speech_server

AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
SENTENCES = (
    "Thank you for calling the pharmacy line today.",
    "Your refill is ready for pickup at the front counter.",
    "We are open from eight until six on weekdays.",
)


async def _talker(call: CallControl) -> None:
    listen = call.details.parameters.get("listen") == "1"
    for sentence in SENTENCES:
        await call.say(sentence, barge_in=BargeInPolicy("any" if listen else "none"))
        if listen:
            while (item := await call.next_input(3000)) is not None:
                if isinstance(item, SpeechInput):
                    break
            await call.say("I heard you. Here is the rest.", barge_in=BargeInPolicy("none"))
            listen = False
    await call.hangup()


def _silences(result: CallResult) -> tuple[float, float]:
    """(longest gap between bot audio up to the close, caller's end → next bot audio)."""
    closed = next(e["t_ms"] for e in result.events if e["event"] == "stream_closed")
    marks = [0.0]
    for u in result.utterances:
        marks += [u.start_ms, u.end_ms]
    marks.append(closed)
    longest = max(marks[i + 1] - marks[i] for i in range(0, len(marks) - 1, 2))
    reply = float("nan")
    if result.turns and result.turns[0].end_ms is not None:
        end = result.turns[0].end_ms
        later = [u.start_ms for u in result.utterances if u.start_ms > end]
        reply = (later[0] if later else closed) - end
    return longest, reply


async def _one(scenario: str) -> tuple[float, float, str]:
    speech = await start_speech_server(host="127.0.0.1", port=0)
    speech.config.realtime_factor = 1.0
    steps = "  - silence: 15000\n"
    listen = "0"
    if scenario == "stall":
        speech.config.fault_stall_after_ms = 1500
        speech.config.fault_first_sessions = 1
    elif scenario == "silent":
        speech.config.fault_stall_after_ms = 0
    elif scenario == "reset":
        speech.config.fault_ignore_reset = True
        steps = '  - barge_in: {after_ms: 1500, say: "wait, one question"}\n' + steps
        listen = "1"
    elif scenario == "blackhole":
        speech.config.accept_delay_ms = 20_000
    bridge = await start_bridge(
        Settings(
            twilio_auth_token=AUTH_TOKEN,
            lmnt_base_url=speech.base_url,
            lmnt_api_key="k",
            port=0,
            log_level="error",
        ),
        apps={"talker": lambda parameters: DialogApp(_talker, name="talker")},
        default_app="talker",
    )
    restarted = None
    try:
        call = asyncio.create_task(
            run_call(
                voice_url=f"{bridge.base_url}/twilio/voice?listen={listen}",
                ws_url=None,
                script=parse_script(f"steps:\n{steps}", "faults.yaml"),
                auth_token=AUTH_TOKEN,
                speed=1.0,
            )
        )
        if scenario == "restart":
            await asyncio.sleep(1.5)
            port = speech.port
            await speech.stop()
            await asyncio.sleep(2.0)
            restarted = await start_speech_server(host="127.0.0.1", port=port)
            restarted.config.realtime_factor = 1.0
        result = await call
    finally:
        await bridge.stop()
        await (restarted or speech).stop()
    longest, reply = _silences(result)
    verbs = ",".join(result.verdict.verbs)
    return longest, reply, verbs


async def main(args: argparse.Namespace) -> None:
    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    print(f"{'scenario':<10} {'runs':>4} {'silence p50':>12} {'max':>8} {'reply max':>10}  ended")
    for scenario in args.scenarios:
        runs = [await _one(scenario) for _ in range(args.runs)]
        longest = [r[0] for r in runs]
        replies = [r[1] for r in runs if r[1] == r[1]]
        ended = sorted({r[2] for r in runs})
        reply = f"{max(replies):.0f} ms" if replies and scenario == "reset" else "-"
        print(
            f"{scenario:<10} {len(runs):>4} {statistics.median(longest):>9.0f} ms "
            f"{max(longest):>5.0f} ms {reply:>10}  {' | '.join(ended)}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--scenarios",
        nargs="+",
        default=["stall", "silent", "reset", "restart", "blackhole"],
    )
    asyncio.run(main(parser.parse_args()))
