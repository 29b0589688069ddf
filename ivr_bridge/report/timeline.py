"""One call as a picture: both channels' waveforms on the call's clock, with what happened.

Two lanes, caller on top and bot (what the caller *heard*) below, each a min-max envelope of the
8 kHz line. Over them: the caller's turns and the bot's utterances as bars (red: cut off), marks
as ticks, ``clear``s and barge-ins as dashed lines, keys as ticks, and each turn's latency (end
of the caller's turn → the bot's next audio heard) as a bracket with its number. Plain SVG with
class names a test (or a stylesheet) can find; no script, no fonts to fetch.
"""

from __future__ import annotations

from html import escape

from ivr_bridge.report.view import CallView, Peaks
from ivr_bridge.report.waveform import COLUMNS

WIDTH = COLUMNS
"""Pixels for the call's whole duration."""
LANE_HEIGHT = 60
TOP = 20
"""Room above the lanes for the time axis labels."""
LANES = {"caller": TOP, "bot": TOP + LANE_HEIGHT + 50}
"""Between the lanes: the caller's turn labels, then the latency brackets."""
HEIGHT = TOP + 2 * LANE_HEIGHT + 50 + 30
_MOMENT_COLOURS = {"clear": "#c0392b", "barge_in": "#e67e22"}


def timeline_svg(view: CallView) -> str:
    """The call's timeline as an SVG element (pixel x = call ms × WIDTH / duration)."""
    duration_ms = max(view.duration_ms, 1000.0)

    def x(t_ms: float) -> float:
        return round(max(0.0, min(t_ms, duration_ms)) * WIDTH / duration_ms, 1)

    parts: list[str] = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}"'
        f' width="100%" data-duration-ms="{duration_ms:.0f}" role="img"'
        f' aria-label="call timeline">'
    ]
    parts += _axis(duration_ms)
    for lane, peaks, label in (
        ("caller", view.caller_peaks, "caller"),
        ("bot", view.bot_peaks, view.bot_lane),
    ):
        top = LANES[lane]
        parts.append(
            f'<text class="lane-label" x="2" y="{top + 12}" font-size="11">{escape(label)}</text>'
        )
        parts.append(_waveform(peaks, top, lane))
    for u in view.utterances:
        cls = "utterance interrupted" if u.interrupted else "utterance"
        parts.append(
            f'<rect class="{cls}" x="{x(u.start_ms)}" y="{LANES["bot"] + LANE_HEIGHT + 2}"'
            f' width="{max(x(u.end_ms) - x(u.start_ms), 1)}" height="6"'
            f' fill="{"#c0392b" if u.interrupted else "#2e86c1"}"><title>{escape(u.text)}</title>'
            "</rect>"
        )
    for turn in view.turns:
        cls = "turn barge-in" if turn.barge_in else "turn"
        parts.append(
            f'<rect class="{cls}" x="{x(turn.start_ms)}" y="{LANES["caller"] + LANE_HEIGHT + 2}"'
            f' width="{max(x(turn.end_ms) - x(turn.start_ms), 1)}" height="6" fill="#27ae60">'
            f"<title>{escape(turn.kind)}: {escape(turn.detail)}</title></rect>"
            f'<text class="turn-label" x="{x(turn.start_ms)}"'
            f' y="{LANES["caller"] + LANE_HEIGHT + 20}"'
            f' font-size="10" fill="#1e8449">{escape(_short(turn.detail))}</text>'
        )
        if turn.latency_ms is not None:
            end = turn.end_ms
            parts += _latency(x(end), x(end + turn.latency_ms), turn.latency_ms)
    for m in view.moments:
        if m.kind in _MOMENT_COLOURS:
            cls = "clear" if m.kind == "clear" else "barge-in-mark"
            parts.append(_line(cls, x(m.at_ms), _MOMENT_COLOURS[m.kind], escape(m.label)))
        elif m.kind == "mark":
            y = LANES["bot"]
            parts.append(
                f'<line class="mark" x1="{x(m.at_ms)}" x2="{x(m.at_ms)}" y1="{y - 6}" y2="{y}"'
                f' stroke="#8e44ad"><title>{escape(m.label)}</title></line>'
            )
        else:
            y = LANES["caller"] + LANE_HEIGHT
            parts.append(
                f'<line class="digit" x1="{x(m.at_ms)}" x2="{x(m.at_ms)}" y1="{y - 8}" y2="{y}"'
                f' stroke="#27ae60"><title>{escape(m.label)}</title></line>'
            )
    parts.append(
        f'<line class="playhead" x1="0" x2="0" y1="{TOP}" y2="{HEIGHT - 20}" stroke="#000"'
        ' stroke-width="1.5" visibility="hidden"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _short(text: str, limit: int = 18) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _axis(duration_ms: float) -> list[str]:
    step_s = next(
        (s for s in (1, 2, 5, 10, 30, 60, 120, 300, 600) if duration_ms / 1000 / s <= 12), 1200
    )
    out = []
    t = 0
    while t * 1000 <= duration_ms:
        px = round(t * 1000 * WIDTH / duration_ms, 1)
        out.append(
            f'<line class="tick" x1="{px}" x2="{px}" y1="{TOP - 4}" y2="{HEIGHT - 20}"'
            ' stroke="#eee"/>'
            f'<text x="{px}" y="{TOP - 6}" font-size="10" fill="#666">{t} s</text>'
        )
        t += step_s
    return out


def _waveform(peaks: Peaks, top: int, lane: str) -> str:
    """The envelope, one column per pixel."""
    if not peaks:
        return f'<g class="waveform {lane}"></g>'
    mid = top + LANE_HEIGHT / 2
    path = []
    for px, (low, high) in enumerate(peaks):
        y1 = mid - high * LANE_HEIGHT / 2
        y2 = mid - low * LANE_HEIGHT / 2
        path.append(f"M{px} {y1:.1f}V{max(y2, y1 + 0.5):.1f}")
    color = "#27ae60" if lane == "caller" else "#2e86c1"
    return (
        f'<g class="waveform {lane}"><rect x="0" y="{top}" width="{WIDTH}" height="{LANE_HEIGHT}"'
        f' fill="#fafafa"/><path d="{"".join(path)}" stroke="{color}" stroke-width="1"/></g>'
    )


def _line(cls: str, px: float, color: str, title: str) -> str:
    return (
        f'<line class="{cls}" x1="{px}" x2="{px}" y1="{TOP}" y2="{LANES["bot"] + LANE_HEIGHT}"'
        f' stroke="{color}" stroke-width="1.5" stroke-dasharray="4 2"><title>{title}</title></line>'
    )


def _latency(x1: float, x2: float, latency_ms: float) -> list[str]:
    y = LANES["bot"] - 14
    return [
        f'<g class="latency"><path d="M{x1} {y - 4}V{y}H{x2}V{y - 4}" fill="none"'
        f' stroke="#555"/><text x="{(x1 + x2) / 2}" y="{y - 6}" font-size="10"'
        f' text-anchor="middle" fill="#333">{latency_ms:.0f} ms</text>'
        f"<title>caller end of turn → first bot audio: {latency_ms:.0f} ms</title></g>"
    ]
