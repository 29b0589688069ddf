"""The HTML around a drawn call: styles, the audio player and its playhead, the transcript.

Everything a page needs is inline (no fonts, scripts or images to fetch), so a report opens from
disk and a served page can forbid every other source in its Content-Security-Policy (give
:func:`document` the response's nonce). Escaped throughout: a bot or a caller may say anything,
and their words end up in HTML.
"""

from __future__ import annotations

from html import escape

from ivr_bridge.report.timeline import timeline_svg
from ivr_bridge.report.view import Badge, CallView, TranscriptRow

STYLE = """
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
s.unheard{color:#999;text-decoration:line-through}
audio{width:100%}.summary{color:#444}
"""

PLAYHEAD = """
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

CAPTION = (
    "caller on top, the bot as the caller heard it below; bars: turns and utterances (red: cut "
    "off); dashed: clear (red) and barge-in (orange); ticks: marks and keys; brackets: turn "
    "latency."
)


def badge(status: str) -> str:
    shown = {"pass": "PASS", "fail": "FAIL", "inconclusive": "INCONCLUSIVE"}.get(status, status)
    return f'<span class="verdict verdict-{escape(status)}">{escape(shown)}</span>'


def figure(view: CallView, caption: str = CAPTION) -> str:
    """The timeline with its caption (clicking it plays from there when there is a player)."""
    click = " Click to play from there." if view.audio_src else ""
    return f"<figure>{timeline_svg(view)}<figcaption>{escape(caption)}{click}</figcaption></figure>"


def audio_player(view: CallView) -> str:
    if view.audio_src is None:
        return ""
    return (
        f'<audio class="recording" controls preload="metadata" src="{escape(view.audio_src)}">'
        '</audio><p class="muted">Stereo: left the caller, right what the caller heard.</p>'
    )


def transcript_table(rows: list[TranscriptRow], *, checks: bool = False) -> str:
    """One line per thing said, in call order; the bot's unheard words struck through."""
    html = []
    for row in rows:
        cls = (
            "who-bot" if row.who == "bot" else "who-caller" if row.who.startswith("caller") else ""
        )
        said = escape(row.text)
        if row.unheard:
            gap = " " if said else ""
            said += (
                f'{gap}<s class="unheard" title="not heard: the caller cut it off">'
                f"{escape(row.unheard)}</s>"
            )
        if row.note:
            said += f' <span class="muted note">{escape(row.note)}</span>'
        cells = f'<td>{row.at_ms / 1000:.2f} s</td><td class="{cls}">{escape(row.who)}</td>'
        cells += f"<td>{said}</td>"
        if checks:
            cells += f'<td class="placed-checks">{_badges(row.badges)}</td>'
        html.append(f'<tr class="line" data-who="{escape(row.who)}">{cells}</tr>')
    head = "<th>call time</th><th>who</th><th>what</th>"
    head += "<th>checks here</th>" if checks else ""
    return f'<table class="transcript"><tr>{head}</tr>{"".join(html)}</table>'


def _badges(badges: tuple[Badge, ...]) -> str:
    return " ".join(f"{badge(b.status)} {escape(b.name)}" for b in badges)


def document(title: str, body: str, *, nonce: str | None = None) -> str:
    """A whole page: ``body`` (already HTML) with the styles and the playhead script inline."""
    n = f' nonce="{escape(nonce)}"' if nonce else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style{n}>{STYLE}</style></head>"
        f"<body>{body}<script{n}>{PLAYHEAD}</script></body></html>\n"
    )
