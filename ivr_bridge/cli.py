"""``ivr-bridge``: serve calls, run the speech server, place simulated calls, run the demo."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from ivr_bridge import __version__
from ivr_bridge.config import load_settings
from ivr_bridge.dialog.flow import FlowError
from ivr_bridge.errors import IvrBridgeError
from ivr_bridge.logs import configure_logging


def _serve(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.workers is not None:
        overrides["workers"] = args.workers
    settings = load_settings(**overrides)
    configure_logging(settings.log_format, settings.log_level)
    import os

    from ivr_bridge.server.app import serve
    from ivr_bridge.server.workers import WORKER_INDEX_ENV, run_workers, worker_count

    index = os.environ.get(WORKER_INDEX_ENV)
    if index is not None:  # one of several workers started by `serve --workers N`
        import structlog

        structlog.contextvars.bind_contextvars(worker=int(index))
        asyncio.run(serve(settings, reuse_port=True, dial=index == "0"))
        return 0
    count = worker_count(settings)
    if count == 1:
        asyncio.run(serve(settings))
    else:
        run_workers(settings, count)
    return 0


def _speech_server(args: argparse.Namespace) -> int:
    from ivr_bridge.speechserver.app import run_from_args

    return run_from_args(args)


def _call(args: argparse.Namespace) -> int:
    from ivr_bridge.sim.cli import run_call_from_args

    return asyncio.run(run_call_from_args(args))


def _test(args: argparse.Namespace) -> int:
    from ivr_bridge.tester.cli import run_tests_from_args

    return asyncio.run(run_tests_from_args(args))


def _demo(args: argparse.Namespace) -> int:
    if args.what == "campaign":
        from ivr_bridge.demo_campaign import run_campaign_demo

        return asyncio.run(run_campaign_demo(args))
    from ivr_bridge.demo import run_demo

    return asyncio.run(run_demo(args))


def _flows_check(args: argparse.Namespace) -> int:
    """Validate flow files (schema, targets, templates' variables and env names, the voice);
    every problem is printed as ``file:line: where: what``."""
    from pathlib import Path

    from ivr_bridge.dialog.flow import load_flow
    from ivr_bridge.speechserver.voices import VOICES

    # The embedded speech server's voices are known here; a remote one's only when serving.
    voices = list(VOICES) if load_settings().uses_embedded_speech else None
    failed = 0
    for name in args.files:
        try:
            flow = load_flow(Path(name), voices)
        except FlowError as exc:
            failed += 1
            print(exc, file=sys.stderr)
        else:
            print(f"{name}: ok ({flow.name}, {len(flow.steps)} steps)")
    return 1 if failed else 0


def _loadtest(args: argparse.Namespace) -> int:
    from ivr_bridge.loadtest.cli import run_loadtest_from_args

    return run_loadtest_from_args(args)


def _campaign(args: argparse.Namespace) -> int:
    from ivr_bridge.campaign.cli import run_campaign_from_args

    return run_campaign_from_args(args)


def _calls(args: argparse.Namespace) -> int:
    from ivr_bridge.records.cli import run_calls_from_args

    return run_calls_from_args(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ivr-bridge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ivr-bridge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="answer Twilio calls (settings from the environment)")
    serve.add_argument("--host", help="interface to listen on (IVR_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (IVR_PORT, default 8080)")
    serve.add_argument(
        "--workers",
        type=int,
        help="processes sharing the port (IVR_WORKERS; default: one per core with IVR_REDIS_URL, "
        "else 1)",
    )
    serve.set_defaults(func=_serve)

    speech = sub.add_parser("speech-server", help="run the LMNT-compatible speech server")
    from ivr_bridge.speechserver.app import add_arguments

    add_arguments(speech)
    speech.set_defaults(func=_speech_server)

    call = sub.add_parser("call", help="place a simulated Twilio call against a bridge")
    from ivr_bridge.sim.cli import add_call_arguments

    add_call_arguments(call)
    call.set_defaults(func=_call)

    test = sub.add_parser("test", help="run a suite of phone scenarios against a voice agent")
    from ivr_bridge.tester.cli import add_test_arguments

    add_test_arguments(test)
    test.set_defaults(func=_test)

    flows = sub.add_parser("flows", help="work with flow files")
    flows_sub = flows.add_subparsers(dest="flows_command", required=True)
    check = flows_sub.add_parser("check", help="validate flow files (exit 1 on any error)")
    check.add_argument("files", nargs="+", metavar="FILE", help="flow YAML files")
    check.set_defaults(func=_flows_check)

    load = sub.add_parser("loadtest", help="measure how many concurrent calls one bridge carries")
    from ivr_bridge.loadtest.cli import add_loadtest_arguments

    add_loadtest_arguments(load)
    load.set_defaults(func=_loadtest)

    campaign = sub.add_parser("campaign", help="outbound reminder campaigns")
    from ivr_bridge.campaign.cli import add_campaign_arguments

    add_campaign_arguments(campaign)
    campaign.set_defaults(func=_campaign)

    calls = sub.add_parser("calls", help="kept call records: list them, show one")
    from ivr_bridge.records.cli import add_calls_arguments

    add_calls_arguments(calls)
    calls.set_defaults(func=_calls)

    demo = sub.add_parser("demo", help="run a whole call on embedded defaults and record it")
    demo.add_argument(
        "what",
        nargs="?",
        default="call",
        choices=["call", "campaign"],
        help="one support-line call (default), or a 10-contact reminder campaign",
    )
    demo.add_argument("--out", default="demo-out", help="directory for call.wav and transcript")
    demo.add_argument("--cps", type=float, default=2.0, help="campaign: calls per second")
    demo.add_argument(
        "--speed", type=float, default=1.0, help="simulated seconds per real second (> 0)"
    )
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except IvrBridgeError as exc:  # ours, with a message that names the fix: no traceback
        print(f"ivr-bridge: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
