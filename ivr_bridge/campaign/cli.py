"""``ivr-bridge campaign create|import|start|pause|resume|status|export``.

The database is ``--db`` or ``IVR_CAMPAIGN_DB`` (default: ``sqlite:///campaigns.db`` here), the
same one the bridge's dispatcher reads, so a campaign set up here starts dialling as soon as it
is started and a bridge with that database is running.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from ivr_bridge.campaign.contacts import read_contacts
from ivr_bridge.campaign.plan import CampaignPlan
from ivr_bridge.campaign.report import campaign_status, export_csv
from ivr_bridge.campaign.script import DEFAULT_SCRIPT, ReminderScript, load_script, script_path
from ivr_bridge.campaign.store import CampaignStore
from ivr_bridge.config import DEFAULT_FLOWS_DIR
from ivr_bridge.errors import CampaignError

DEFAULT_DB = "sqlite:///campaigns.db"


def add_campaign_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", default=None, help=f"campaign database (IVR_CAMPAIGN_DB, default {DEFAULT_DB})"
    )
    parser.add_argument(
        "--flows-dir",
        type=Path,
        default=None,
        help=f"where reminders/<script>.yaml are (IVR_FLOWS_DIR, default {DEFAULT_FLOWS_DIR})",
    )
    sub = parser.add_subparsers(dest="campaign_command", required=True)
    create = sub.add_parser("create", help="a new campaign (draft until started)")
    create.add_argument("name", help="campaign id, e.g. flu-2026-12")
    create.add_argument("--caller-id", required=True, help="E.164 number calls come from")
    create.add_argument("--business", default="your clinic", help="who is calling, as said")
    create.add_argument("--callback-number", help="number messages give (default: caller id)")
    create.add_argument("--leads", default="48h,24h", help="rounds before the appointment")
    create.add_argument("--cutoff", default="2h", help="no call this close to the appointment")
    create.add_argument("--window-start", help="fixed window start (ISO 8601 with offset)")
    create.add_argument("--window-end", help="fixed window end (ISO 8601 with offset)")
    create.add_argument("--hours", default="08:00-21:00", help="calling hours, callee's time")
    create.add_argument("--days", default="mon-sat", help="calling days, e.g. mon-fri")
    create.add_argument("--max-attempts", type=int, default=3, help="per round")
    create.add_argument("--max-concurrent", type=int, default=20, help="live calls at once")
    create.add_argument(
        "--script", default=DEFAULT_SCRIPT, help="the words: flows/reminders/SCRIPT.yaml"
    )
    imp = sub.add_parser("import", help="add contacts from a CSV file")
    imp.add_argument("name")
    imp.add_argument("csv", type=Path)
    imp.add_argument("--strict", action="store_true", help="import nothing if any row is bad")
    for verb, text in (
        ("start", "start dialling"),
        ("pause", "stop dialling for now"),
        ("resume", "dial again after a pause"),
    ):
        sub.add_parser(verb, help=text).add_argument("name")
    status = sub.add_parser("status", help="progress and rates")
    status.add_argument("name")
    status.add_argument("--watch", action="store_true", help="redraw every 2 s until done")
    export = sub.add_parser("export", help="outcomes CSV, one row per attempt")
    export.add_argument("name")
    export.add_argument("--out", type=Path, help="file to write (default: standard output)")


def run_campaign_from_args(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    url = args.db or os.environ.get("IVR_CAMPAIGN_DB") or DEFAULT_DB
    store = await CampaignStore.open(url, now=time.time())
    try:
        return await _command(store, args)
    finally:
        await store.close()


def _plan(args: argparse.Namespace) -> CampaignPlan:
    start, _, end = args.hours.partition("-")
    window = {}
    if args.window_start or args.window_end:
        window = {"window_start": args.window_start, "window_end": args.window_end}
    try:
        return CampaignPlan.model_validate(
            {
                "business": args.business,
                "callback_number": args.callback_number,
                "leads": args.leads,
                "cutoff": args.cutoff,
                "hours_start": start,
                "hours_end": end,
                "days": args.days,
                "max_attempts": args.max_attempts,
                "max_concurrent": args.max_concurrent,
                "script": args.script,
                **window,
            }
        )
    except ValueError as exc:  # pydantic names the field and the problem
        raise CampaignError(f"campaign settings: {exc}") from None


def _script(args: argparse.Namespace, plan: CampaignPlan) -> ReminderScript:
    flows_dir = args.flows_dir or Path(os.environ.get("IVR_FLOWS_DIR") or DEFAULT_FLOWS_DIR)
    return load_script(script_path(flows_dir, plan.script))


async def _command(store: CampaignStore, args: argparse.Namespace) -> int:
    command, now = args.campaign_command, time.time()
    if command == "create":
        plan = _plan(args)
        _script(args, plan)  # refuse a campaign whose words are missing or broken
        await store.create_campaign(
            args.name,
            name=args.name,
            caller_id=args.caller_id,
            app="reminder",
            plan=plan,
            now=now,
        )
        print(f"campaign {args.name} created (draft): import contacts, then start it")
        return 0
    if command == "import":
        script = _script(args, await store.plan(args.name))
        result = read_contacts(args.csv, now=datetime.now(UTC), strict=args.strict, script=script)
        skipped = await store.add_contacts(args.name, result.contacts, now=now)
        for problem in result.problems:
            print(problem, file=sys.stderr)
        for duplicate in skipped:
            print(f"{args.csv}:{duplicate.removeprefix('line ')}", file=sys.stderr)
        print(
            f"{result.report().splitlines()[-1]}"
            + (f"; {len(skipped)} already in the campaign" if skipped else "")
        )
        return 0 if len(result.contacts) > len(skipped) or not result.problems else 1
    if command in ("start", "resume"):
        await store.set_status(args.name, "running")
        print(f"campaign {args.name} running")
        return 0
    if command == "pause":
        await store.set_status(args.name, "paused")
        print(f"campaign {args.name} paused: calls already ringing go on, no new ones start")
        return 0
    if command == "status":
        while True:
            status = campaign_status(
                await store.campaign(args.name), await store.attempt_rows(args.name)
            )
            if args.watch and sys.stdout.isatty():
                print("\033[H\033[J", end="")
            print(status.table())
            if not args.watch or status.finished_contacts >= status.contacts:
                return 0
            await asyncio.sleep(2)
    if command == "export":
        text = export_csv(await store.attempt_rows(args.name))
        if args.out:
            args.out.write_text(text, encoding="utf-8")
            print(f"{args.out}: {text.count(chr(10)) - 1} attempts")
        else:
            sys.stdout.write(text)
        return 0
    raise CampaignError(f"unknown campaign command {command!r}")
