"""``ivr-bridge call``: place one simulated call from the command line.

The lead's CLI adds these arguments to its ``call`` subcommand and awaits
:func:`run_call_from_args`. Exit codes: 0 every expectation passed, 1 one failed, 2 bad usage,
3 inconclusive (a timing limit the machine was too busy to judge: run again at a lower speed).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ivr_bridge.sim.scenario.call import run_call
from ivr_bridge.sim.scenario.hearing import bot_transcriber_or_note
from ivr_bridge.sim.scenario.result import CallResult
from ivr_bridge.sim.scenario.script import ScriptError, load_script
from ivr_bridge.sim.scenario.voice import AudioFileError

EXIT_OK = 0
EXIT_EXPECTATION_FAILED = 1
EXIT_USAGE = 2
EXIT_INCONCLUSIVE = 3
"""Nothing failed, but a timing limit could not be judged: the caller's clock fell behind."""


def exit_code(result: CallResult) -> int:
    if result.passed:
        return EXIT_OK
    return EXIT_INCONCLUSIVE if result.inconclusive else EXIT_EXPECTATION_FAILED


def add_call_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--url", help="voice webhook URL to start from, like Twilio (http(s)://…/twilio/voice)"
    )
    target.add_argument(
        "--ws-url", help="direct mode: open this media-stream URL with no webhook (ws(s)://…)"
    )
    parser.add_argument(
        "--script", required=True, help="caller script YAML file, or the name of a shipped one"
    )
    parser.add_argument("--out", type=Path, help="directory for call.wav and transcript.json")
    parser.add_argument(
        "--auth-token",
        default=os.environ.get("TWILIO_AUTH_TOKEN"),
        help="sign requests with this Twilio auth token (default: $TWILIO_AUTH_TOKEN)",
    )
    parser.add_argument(
        "--speed", type=float, default=1.0, help="virtual clock speed (10 = ten times real time)"
    )
    parser.add_argument(
        "--transcribe",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="transcribe what the bot said (embedded whisper); default: when the script checks "
        "bot_said or how the call ended",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="direct mode: a start.customParameters entry (repeatable)",
    )


def _parse_params(items: list[str]) -> dict[str, str]:
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--param {item!r}: expected NAME=VALUE")
        params[name] = value
    return params


async def run_call_from_args(args: argparse.Namespace) -> int:
    """Run the call the arguments describe, print the summary, return the exit code."""
    try:
        script = load_script(args.script)
        params = _parse_params(args.param)
    except (ScriptError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.speed <= 0:
        print("error: --speed must be > 0", file=sys.stderr)
        return EXIT_USAGE
    transcriber = None
    # An apology is heard in the bot's last words, so an ``ended`` check wants ears too.
    wanted = args.transcribe if args.transcribe is not None else script.needs_words()
    if wanted:
        transcriber = await bot_transcriber_or_note()
    try:
        result = await run_call(
            voice_url=args.url,
            ws_url=args.ws_url,
            script=script,
            auth_token=args.auth_token,
            speed=args.speed,
            out_dir=args.out,
            custom_parameters=params or None,
            transcriber=transcriber,
        )
    except AudioFileError as exc:  # a ``play:`` file; raised before anything is dialled
        print(f"error: script {args.script}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print_result(result)
    return exit_code(result)


def print_result(result: CallResult) -> None:
    print(result.summary_table())
    if result.out_dir is not None:
        print(f"recording: {result.out_dir / 'call.wav'} (left caller, right heard)")
        print(f"transcript: {result.out_dir / 'transcript.json'}")
