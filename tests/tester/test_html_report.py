"""The tester's HTML report, drawn by the shared report package, from a call recorded here.

A five-second call: the bot speaks twice, the caller talks over the first utterance (a barge-in,
a ``clear``), presses a key; the report must show what a person reading it looks for.
"""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path

from ivr_bridge.audio.codec import pcm16_to_ulaw
from ivr_bridge.sim.scenario.recording import CallRecorder
from ivr_bridge.sim.scenario.result import CallResult, ExpectationResult
from ivr_bridge.sim.twilio.twiml import Verdict
from ivr_bridge.tester.html_report import html_report
from ivr_bridge.tester.runner import RunResult, ScenarioResult, SuiteResult
from ivr_bridge.tester.suite import parse_suite

SUITE = """\
name: drawn
defaults: {target: {flow: f.yaml}}
scenarios:
  - {name: menu by voice, steps: [hangup]}
"""


def tone(ms: int, amplitude: int) -> bytes:
    samples = (int(amplitude * math.sin(i / 5)) for i in range(ms * 8))
    return pcm16_to_ulaw(b"".join(struct.pack("<h", s) for s in samples))


def recorded_call() -> CallResult:
    recorder = CallRecorder()
    silence = b"\xff" * 160
    for n in range(250):
        t = n * 20.0
        bot = 1000 <= t < 2500 or 3500 <= t < 4200
        caller = 2200 <= t < 3000
        recorder.frame(
            t, tone(20, 7000) if caller else silence, tone(20, 9000) if bot else silence, 160
        )
        if t == 2500:
            recorder.cleared()
            recorder.event(t, "clear")
    recorder.event(2300, "barge_in")
    recorder.event(4500, "digit", digit="5")
    turn = recorder.begin_turn("say", "billing please", 2200, barge_in=True)
    recorder.end_turn(turn, 3000)
    recorder.utterances[0].text = "For billing, press one <b>"
    recorder.finish()
    checks = [
        ExpectationResult("bot said: for billing", "pass", "heard", at_ms=1000.0),
        ExpectationResult("ended: hangup", "fail", "it transferred", at_ms=recorder.line_end_ms),
    ]
    return CallResult("CA1", "MZ1", Verdict("hangup"), recorder, None, 1.0, checks)


def report(tmp_path: Path) -> str:
    loaded = parse_suite(SUITE, tmp_path / "drawn.yaml")
    runs = [RunResult("menu by voice", 1, 1.0, recorded_call())]
    return html_report(SuiteResult(loaded, [ScenarioResult(loaded.scenarios[0], runs)], 1, 0, 1))


def test_the_call_is_drawn_with_its_waveforms_cut_utterance_barge_in_key_and_latency(
    tmp_path: Path,
) -> None:
    html = report(tmp_path)
    svg = html[html.index('<svg class="timeline"') : html.index("</svg>")]
    assert 'data-duration-ms="5000"' in svg
    waves = re.findall(r'<g class="waveform (caller|bot)">.*?<path d="([^"]+)"', svg)
    assert [lane for lane, _ in waves] == ["caller", "bot"]
    assert all(len(d) > 1000 for _, d in waves)
    assert svg.count('class="utterance interrupted"') == 1 and svg.count('class="utterance"') == 1
    assert 'class="turn barge-in"' in svg and 'class="barge-in-mark"' in svg
    assert 'class="clear"' in svg and "<title>key 5</title>" in svg
    assert "500 ms</text>" in svg  # the caller stopped at 3.0 s, the bot answered at 3.5 s
    assert "press one &lt;b&gt;" in svg and "<b>" not in svg  # the bot's words are escaped


def test_the_recording_is_embedded_and_each_verdict_sits_on_its_transcript_line(
    tmp_path: Path,
) -> None:
    html = report(tmp_path)
    assert '<audio class="recording" controls preload="metadata" src="data:audio/wav;base64,' in (
        html
    )
    transcript = html[html.index('<table class="transcript">') :]
    lines = re.findall(r"<tr class=\"line\" data-who=\"([^\"]+)\">(.*?)</tr>", transcript)
    assert [who for who, _ in lines] == ["bot", "caller (barge-in)", "bot", "end"]
    assert "PASS</span> bot said: for billing" in lines[0][1] and "[cut off]" in lines[0][1]
    assert "FAIL</span> ended: hangup" in lines[3][1]
    assert "say: billing please → bot after 500 ms" in lines[1][1]
