"""The report people read: one HTML file per run that opens from disk, with nothing to fetch.

Top: the pass/fail table (one row per scenario, its pass rate over repeats and the first
reason). Then per call: its checks, the timeline picture (:mod:`ivr_bridge.tester.timeline`), the
stereo recording in an audio player (left caller, right what the caller heard; embedded as a
data URI) whose playhead runs over the timeline, and the transcript with each check's verdict on
the line it judged. Escaped throughout: a bot may say anything, and its words end up in HTML.
"""

from __future__ import annotations

import base64
import io
import time
import wave
from html import escape

from ivr_bridge.audio.codec import audioop  # the one guarded import (3.11-3.13)
from ivr_bridge.sim.scenario.audio_timing import percentile
from ivr_bridge.sim.scenario.result import CallResult, ExpectationResult
from ivr_bridge.tester.reports import scenario_latencies
from ivr_bridge.tester.runner import RunResult, ScenarioResult, SuiteResult
from ivr_bridge.tester.suite import slug
from ivr_bridge.tester.timeline import timeline_svg

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 6px}
table{border-collapse:collapse;margin:8px 0;width:100%}
td,th{border-bottom:1px solid #e4e4e4;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f6f6;font-weight:600}
.verdict{font-weight:700;border-radius:3px;padding:1px 6px;white-space:nowrap}
.verdict-pass{background:#d5f5e3;color:#196f3d}.verdict-fail{background:#fadbd8;color:#922b21}
.verdict-inconclusive{background:#fcf3cf;color:#7d6608}
section.call{border-top:2px solid #ddd;margin-top:24px}
figure{margin:8px 0}figcaption{color:#666;font-size:12px}
.who-bot{color:#2e86c1}.who-caller{color:#27ae60}.muted{color:#777}
audio{width:100%}.summary{color:#444}
"""

_PLAYHEAD = """
document.querySelectorAll('section.call').forEach(function(call){
  var audio=call.querySelector('audio.recording'), svg=call.querySelector('svg.timeline');
  if(!audio||!svg)return;
  var head=svg.querySelector('.playhead'), total=+svg.dataset.durationMs/1000;
  audio.addEventListener('timeupdate',function(){
    var x=Math.min(audio.currentTime/total,1)*1000;
    head.setAttribute('x1',x);head.setAttribute('x2',x);head.setAttribute('visibility','visible');
  });
  svg.addEventListener('click',function(e){
    var box=svg.getBoundingClientRect();
    audio.currentTime=(e.clientX-box.left)/box.width*total;audio.play();
  });
});
"""


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
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(suite.name)}: {result.status}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(body)}<script>{_PLAYHEAD}</script></body></html>\n"
    )


def _badge(status: str) -> str:
    shown = {"pass": "PASS", "fail": "FAIL", "inconclusive": "INCONCLUSIVE"}[status]
    return f'<span class="verdict verdict-{status}">{shown}</span>'


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
    return (
        f'<section class="call" id="{anchor}"><h2>{title}</h2>'
        f'<p class="muted">target {target}; call {escape(result.call_sid)}; '
        f"ended: {escape(result.verdict.describe())}; {result.recorder.line_end_ms / 1000:.1f} s "
        f"of call in {run.wall_s:.1f} s at speed {result.speed:g}</p>"
        f"{_checks_table(run.all_checks())}"
        f"<figure>{timeline_svg(result)}<figcaption>caller on top, the bot as the caller "
        "heard it below; bars: turns and utterances (red: cut off by a clear); dashed: clear "
        "(red) and barge-in (orange); ticks: marks; brackets: turn latency. Click to play from "
        "there.</figcaption></figure>"
        f"{_audio(result)}{_transcript(result)}</section>"
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


def _audio(result: CallResult) -> str:
    buffer = io.BytesIO()
    left, right = result.recorder.channels()
    interleaved = bytearray(2 * len(left))
    interleaved[0::2], interleaved[1::2] = left, right
    with wave.open(buffer, "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(1)
        out.setframerate(8000)
        out.writeframes(_ulaw_to_u8(bytes(interleaved)))
    data = base64.b64encode(buffer.getvalue()).decode()
    return (
        f'<audio class="recording" controls preload="metadata" src="data:audio/wav;base64,{data}">'
        '</audio><p class="muted">Stereo: left the caller, right what the caller heard.</p>'
    )


def _ulaw_to_u8(ulaw: bytes) -> bytes:
    """µ-law to 8-bit unsigned PCM: half the size of 16-bit in the page, and a telephone line
    carries no more than 8 bits anyway."""

    return audioop.bias(audioop.lin2lin(audioop.ulaw2lin(ulaw, 2), 2, 1), 1, 128)


def _transcript(result: CallResult) -> str:
    placed: dict[float, list[ExpectationResult]] = {}
    for check in result.expectations:
        if check.at_ms is not None:
            placed.setdefault(check.at_ms, []).append(check)
    rows: list[tuple[float, str, str]] = []
    for u in result.utterances:
        text = u.text if u.text else f"({(u.end_ms - u.start_ms) / 1000:.1f} s, not transcribed)"
        rows.append((u.start_ms, "bot", text + (" [cut off]" if u.interrupted else "")))
    for t in result.turns:
        latency = f" → bot after {t.latency_ms:.0f} ms" if t.latency_ms is not None else ""
        who = "caller (barge-in)" if t.barge_in else "caller"
        rows.append((t.start_ms, who, f"{t.kind}: {t.detail}{latency}"))
    for e in result.recorder.events_of("branch"):
        chose = f"if the bot said {e['phrase']!r}: took {e['taken']} (score {e['score']:.2f})"
        rows.append((float(e["t_ms"]), "caller (branch)", chose))
    rows.append((result.recorder.line_end_ms, "end", result.verdict.describe()))
    rows.sort(key=lambda r: r[0])
    html = []
    for at, who, text in rows:
        here = placed.pop(at, []) if who in ("bot", "end") else []
        marks = " ".join(f"{_badge(c.status)} {escape(c.name)}" for c in here)
        cls = "who-bot" if who == "bot" else "who-caller" if who.startswith("caller") else ""
        html.append(
            f'<tr><td>{at / 1000:.2f} s</td><td class="{cls}">{escape(who)}</td>'
            f'<td>{escape(text)}</td><td class="placed-checks">{marks}</td></tr>'
        )
    return (
        '<table class="transcript"><tr><th>call time</th><th>who</th><th>what</th>'
        f"<th>checks here</th></tr>{''.join(html)}</table>"
    )
