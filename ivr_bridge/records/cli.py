"""``ivr-bridge calls list|show``: the kept calls from a terminal, read from the same store the
bridge writes (``IVR_RECORDS_DIR``, or ``IVR_RECORDS_DB``), so an operator on the machine needs
no token and no browser. ``show --html`` writes the page the bridge serves, the recording
embedded, to open from disk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from ivr_bridge.config import Settings, load_settings
from ivr_bridge.errors import RecordError
from ivr_bridge.records.model import CallRecord, RecordSummary
from ivr_bridge.records.open import open_record_store
from ivr_bridge.records.pages import OUTCOMES, standalone_call_page
from ivr_bridge.records.store import RecordStore, check_sid
from ivr_bridge.records.view import describe_outcome, record_view


def add_calls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", type=Path, default=None, help="records directory (IVR_RECORDS_DIR)"
    )
    sub = parser.add_subparsers(dest="calls_command", required=True)
    listing = sub.add_parser("list", help="kept calls, newest first")
    listing.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    listing.add_argument("--outcome", choices=OUTCOMES, help="only calls that ended so")
    listing.add_argument("--flow", help="only calls of this flow (e.g. support.yaml)")
    listing.add_argument("--json", action="store_true", help="one JSON array of summaries")
    show = sub.add_parser("show", help="one call: its summary and transcript")
    show.add_argument("sid", metavar="SID", help="the CallSid")
    how = show.add_mutually_exclusive_group()
    how.add_argument("--json", action="store_true", help="the whole record as JSON")
    how.add_argument(
        "--html", type=Path, metavar="OUT.html", help="write the call's page (timeline, player)"
    )


def run_calls_from_args(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    if args.dir is not None:
        overrides["records_dir"] = args.dir
    settings = load_settings(**overrides)
    if settings.records == "off":
        raise RecordError(
            "call records are off (IVR_RECORDS=off): set IVR_RECORDS=metadata or audio, and "
            "IVR_RECORDS_DIR to where the bridge keeps them"
        )
    store = open_record_store(settings)
    assert store is not None
    return asyncio.run(_run(args, settings, store))


def _where(settings: Settings) -> str:
    if settings.records_db:
        return f"the records database (IVR_RECORDS_DB) and {settings.records_dir} (IVR_RECORDS_DIR)"
    return f"{settings.records_dir} (IVR_RECORDS_DIR)"


async def _run(args: argparse.Namespace, settings: Settings, store: RecordStore) -> int:
    try:
        if args.calls_command == "list":
            return await _list(args, settings, store)
        return await _show(args, settings, store)
    finally:
        await store.close()


async def _list(args: argparse.Namespace, settings: Settings, store: RecordStore) -> int:
    found = await store.list(limit=max(1, args.limit), outcome=args.outcome, flow=args.flow)
    if not found and not (args.outcome or args.flow):
        raise RecordError(f"no call records in {_where(settings)}")
    if args.json:
        print(json.dumps([s.model_dump(mode="json") for s in found], indent=1))
        return 0
    if not found:
        print("no calls match", file=sys.stderr)
        return 0
    print(_table(found))
    return 0


def _table(found: list[RecordSummary]) -> str:
    head = ("started (UTC)", "call", "flow", "duration", "outcome", "turns", "barge-ins", "errors")
    rows = [head] + [
        (
            s.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            s.call_sid,
            s.flow or "-",
            f"{s.duration_ms / 1000:.1f} s",
            s.outcome,
            str(s.turns),
            str(s.barge_ins),
            str(s.errors),
        )
        for s in found
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


async def _show(args: argparse.Namespace, settings: Settings, store: RecordStore) -> int:
    try:
        record = await store.get(check_sid(args.sid))
    except RecordError as exc:
        if "not a call id" in str(exc):
            raise RecordError(f"{args.sid!r} is not a CallSid") from None
        raise
    if record is None:
        raise RecordError(f"no record of call {args.sid} in {_where(settings)}")
    if args.json:
        print(record.model_dump_json(indent=1))
        return 0
    if args.html is not None:
        wav = await store.audio(record.call_sid) if record.audio is not None else None
        html = await asyncio.to_thread(standalone_call_page, record, wav)
        await asyncio.to_thread(args.html.write_text, html, "utf-8")
        print(f"wrote {args.html}" + ("" if wav else " (no recording kept for this call)"))
        return 0
    print(_text(record))
    return 0


def _text(record: CallRecord) -> str:
    lines = [
        f"call {record.call_sid}: {describe_outcome(record)} ({record.outcome})",
        f"  flow {record.flow or record.app or '-'}, started "
        f"{record.started_at.isoformat(timespec='seconds')}, {record.duration_ms / 1000:.1f} s, "
        f"{len(record.turns)} caller turns, {len(record.barge_ins)} barge-ins",
    ]
    if record.latency_p50_ms is not None:
        lines.append(
            f"  latency p50 {record.latency_p50_ms:.0f} ms, p95 {record.latency_p95_ms or 0:.0f} ms"
        )
    lines += [f"  error: {e}" for e in record.errors]
    lines.append("")
    for row in record_view(record).transcript:
        said = row.text
        if row.unheard:
            said += f" [not heard: {row.unheard}]"
        if row.note:
            said += f"  ({row.note})"
        lines.append(f"{row.at_ms / 1000:7.2f} s  {row.who:<18} {said}")
    return "\n".join(lines)
