"""The operators' pages as HTML: one call (its timeline, player and transcript) and the list.

Built here, beside the record, so the served pages (``GET /calls``, ``GET /calls/{CallSid}``)
and ``ivr-bridge calls show --html`` print the same page. Self-contained: styles and the one
script inline (with the response's CSP nonce when served), the recording by URL or not at all.
Every value from a call (words, parameters, errors) is escaped.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from html import escape
from urllib.parse import quote, urlencode

from ivr_bridge.records.model import CallRecord, RecordSummary
from ivr_bridge.records.view import describe_outcome, record_view
from ivr_bridge.report.page import audio_player, document, figure, transcript_table
from ivr_bridge.report.view import CallView

OUTCOMES = ("completed", "transferred", "caller_hung_up", "failed")
_OUTCOME_CLASS = {
    "completed": "pass",
    "transferred": "pass",
    "caller_hung_up": "inconclusive",
    "failed": "fail",
}


def outcome_badge(outcome: str) -> str:
    cls = _OUTCOME_CLASS.get(outcome, "inconclusive")
    return f'<span class="verdict verdict-{cls} outcome">{escape(outcome)}</span>'


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def standalone_call_page(record: CallRecord, wav: bytes | None) -> str:
    """One call's page as a file: the recording inside it (a data: URL), nothing to fetch."""
    src = "data:audio/wav;base64," + base64.b64encode(wav).decode() if wav else None
    return call_page(record, record_view(record, wav, audio_src=src))


def call_page(
    record: CallRecord, view: CallView, *, nonce: str | None = None, base: str = "/calls"
) -> str:
    """One call's page; ``base`` is where the list is (links back and to the JSON)."""
    sid = escape(record.call_sid)
    link = f"{escape(base)}/{quote(record.call_sid)}"
    facts = [
        f"flow {escape(record.flow or record.app or '-')}",
        f"started {escape(record.started_at.isoformat(timespec='seconds'))}",
        f"{record.duration_ms / 1000:.1f} s",
        f"ended: {escape(describe_outcome(record))} ({escape(record.ending)} closed the stream)",
        f"{len(record.turns)} caller turns, {len(record.barge_ins)} barge-ins",
        f"latency p50 / p95 {_ms(record.latency_p50_ms)} / {_ms(record.latency_p95_ms)}",
    ]
    errors = "".join(f"<li>{escape(e)}</li>" for e in record.errors)
    parameters = "".join(
        f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>"
        for k, v in sorted(record.parameters.items())
    )
    no_audio = (
        ""
        if view.audio_src
        else '<p class="muted no-audio">No recording kept for this call (IVR_RECORDS=audio keeps '
        "one).</p>"
    )
    body = (
        f'<header><p><a href="{escape(base)}">← all calls</a> · '
        f'<a href="{link}.json">record (JSON)</a></p>'
        f"<h1>Call {sid} {outcome_badge(record.outcome)}</h1>"
        f'<p class="summary">{"; ".join(facts)}</p>'
        + (f'<ul class="errors verdict-fail">{errors}</ul>' if errors else "")
        + "</header>"
        f'<section class="call" id="call">{figure(view)}{audio_player(view)}{no_audio}'
        '<h2>Transcript</h2><p class="muted">The bot\'s words the caller never heard are struck '
        "through.</p>"
        f"{transcript_table(view.transcript)}</section>"
        + (
            '<h2>Parameters</h2><table class="parameters"><tr><th>name</th><th>value</th></tr>'
            f"{parameters}</table>"
            if parameters
            else ""
        )
    )
    return document(f"Call {record.call_sid}: {record.outcome}", body, nonce=nonce)


def list_page(
    summaries: Sequence[RecordSummary],
    filters: Mapping[str, str],
    *,
    nonce: str | None = None,
    base: str = "/calls",
    limit: int = 50,
) -> str:
    """Newest first, with the filters in a form and a link to the page of older calls."""
    rows = "".join(
        f'<tr class="call-row" data-outcome="{escape(s.outcome)}">'
        f'<td><a href="{escape(base)}/{quote(s.call_sid)}">{escape(s.call_sid)}</a></td>'
        f"<td>{escape(s.started_at.isoformat(timespec='seconds'))}</td>"
        f"<td>{escape(s.flow or '-')}</td><td>{s.duration_ms / 1000:.1f} s</td>"
        f"<td>{outcome_badge(s.outcome)}</td><td>{s.turns}</td><td>{s.barge_ins}</td>"
        f"<td>{s.errors}</td><td>{'yes' if s.has_audio else '-'}</td></tr>"
        for s in summaries
    )
    if not rows:
        rows = '<tr><td colspan="9" class="muted">No calls match.</td></tr>'
    chosen = filters.get("outcome", "")
    options = "".join(
        f'<option value="{o}"{" selected" if o == chosen else ""}>{o}</option>'
        for o in ("", *OUTCOMES)
    )
    form = (
        f'<form class="filters" method="get" action="{escape(base)}">'
        f'<label>outcome <select name="outcome">{options}</select></label> '
        f'<label>flow <input name="flow" value="{escape(filters.get("flow", ""))}"></label> '
        f'<label>started before <input name="before" value="{escape(filters.get("before", ""))}"'
        ' placeholder="2026-12-04T18:00:00+00:00"></label> <button>show</button></form>'
    )
    older = ""
    if len(summaries) >= limit:
        query = {k: v for k, v in filters.items() if v and k != "before"}
        query["before"] = summaries[-1].started_at.isoformat()
        older = (
            f'<p><a class="older" href="{escape(base)}?{escape(urlencode(query))}">older →</a></p>'
        )
    body = (
        f'<header><h1>Calls</h1><p class="summary">{len(summaries)} shown, newest first.</p>'
        f"{form}</header>"
        '<table class="calls"><tr><th>call</th><th>started (UTC)</th><th>flow</th>'
        "<th>duration</th><th>outcome</th><th>turns</th><th>barge-ins</th><th>errors</th>"
        f"<th>audio</th></tr>{rows}</table>{older}"
    )
    return document("Calls", body, nonce=nonce)
