"""The report people read: one HTML file per run that opens from disk, with nothing to fetch.

Top: the pass/fail table (one row per scenario, its pass rate over repeats and the first
reason). Then per call: its checks, then the call drawn by the shared report
(:mod:`ivr_bridge.report`, the same drawing the operators' pages show for real calls): the
timeline, the stereo recording in an audio player (left caller, right what the caller heard;
embedded as a data URI) whose playhead runs over the timeline, and the transcript with each
check's verdict on the line it judged. Escaped throughout: a bot may say anything, and its words
end up in HTML.
"""

from __future__ import annotations

import time
from html import escape

from ivr_bridge.report.page import audio_player, badge, document, figure, transcript_table
from ivr_bridge.sim.scenario.audio_timing import percentile
from ivr_bridge.sim.scenario.result import ExpectationResult
from ivr_bridge.tester.reports import scenario_latencies
from ivr_bridge.tester.runner import RunResult, ScenarioResult, SuiteResult
from ivr_bridge.tester.suite import slug
from ivr_bridge.tester.timeline import call_view

_CAPTION = (
    "caller on top, the bot as the caller heard it below; bars: turns and utterances (red: cut "
    "off by a clear); dashed: clear (red) and barge-in (orange); ticks: marks; brackets: turn "
    "latency."
)


def html_report(result: SuiteResult) -> str:
    suite = result.suite.suite
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(result.started_at))
    counts = ", ".join(
        f"{result.count(k)} {k}" for k in ("pass", "fail", "inconclusive") if result.count(k)
    )
    calls = sum(len(s.runs) for s in result.scenarios)
    head = (
        f"<header><h1>{escape(suite.name)} {_badge(result.status)}</h1>"
        f'<p class="summary">{len(result.scenarios)} scenarios ({counts}), {calls} calls, '
        f"{result.wall_s:.1f} s wall time at --parallel {result.parallel}; started {when}; "
        f"suite {escape(str(result.suite.path))}</p>"
        f"{f'<p>{escape(suite.description)}</p>' if suite.description else ''}</header>"
    )
    body = [head, _summary_table(result)]
    for scenario in result.scenarios:
        for run in scenario.runs:
            body.append(_call_section(scenario, run))
    return document(f"{suite.name}: {result.status}", "".join(body))


_badge = badge


def _summary_table(result: SuiteResult) -> str:
    rows = []
    for s in result.scenarios:
        latencies = scenario_latencies(s)
        p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
        shown = f"{p50:.0f} / {p95:.0f} ms" if p50 is not None and p95 is not None else "-"
        first_bad = next((r for r in s.runs if r.status != "pass"), None)
        reason = escape(first_bad.reason()) if first_bad else ""
        link = f"#{slug(s.scenario.name)}-{first_bad.index if first_bad else 1}"
        rows.append(
            f'<tr class="scenario" data-status="{s.status}"><td><a href="{link}">'
            f"{escape(s.scenario.name)}</a></td><td>{_badge(s.status)}</td>"
            f"<td>{s.passed_runs}/{len(s.runs)} (needs {s.scenario.pass_rate:.0%})</td>"
            f"<td>{shown}</td><td>{escape(', '.join(s.scenario.tags))}</td><td>{reason}</td></tr>"
        )
    return (
        '<table class="results"><tr><th>scenario</th><th>result</th><th>calls passed</th>'
        "<th>turn latency p50 / p95</th><th>tags</th><th>first reason</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _call_section(scenario: ScenarioResult, run: RunResult) -> str:
    anchor = f"{slug(scenario.scenario.name)}-{run.index}"
    title = f"{escape(scenario.scenario.name)} · call {run.index} {_badge(run.status)}"
    target = escape(scenario.scenario.target.describe())
    if run.result is None:
        why = f'<p class="verdict-fail">{escape(run.error)}</p>' if run.error else ""
        note = f'<p class="muted">{escape(run.note)}</p>' if run.note else ""
        return (
            f'<section class="call" id="{anchor}"><h2>{title}</h2><p>target {target}</p>'
            f"{why}{note}{_checks_table(run.checks) if run.checks else ''}</section>"
        )
    result = run.result
    view = call_view(result)
    return (
        f'<section class="call" id="{anchor}"><h2>{title}</h2>'
        f'<p class="muted">target {target}; call {escape(result.call_sid)}; '
        f"ended: {escape(result.verdict.describe())}; {result.recorder.line_end_ms / 1000:.1f} s "
        f"of call in {run.wall_s:.1f} s at speed {result.speed:g}</p>"
        f"{_checks_table(run.all_checks())}"
        f"{figure(view, _CAPTION)}{audio_player(view)}"
        f"{transcript_table(view.transcript, checks=True)}</section>"
    )


def _checks_table(checks: list[ExpectationResult]) -> str:
    rows = "".join(
        f'<tr class="check" data-status="{c.status}"><td>{escape(c.name)}</td>'
        f"<td>{_badge(c.status)}</td><td>{escape(c.detail)}</td></tr>"
        for c in checks
    )
    return (
        '<table class="checks"><tr><th>check</th><th>verdict</th><th>detail</th></tr>'
        f"{rows}</table>"
    )
