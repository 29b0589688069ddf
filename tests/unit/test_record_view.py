"""A kept call as operators see it: the record drawn by the shared report, and its page."""

from __future__ import annotations

import re

from ivr_bridge.records.model import RecordSummary
from ivr_bridge.records.pages import call_page, list_page
from ivr_bridge.records.view import record_view
from tests.unit.record_fakes import MENU_HEARD, MENU_UNHEARD, PIN, stereo_wav, support_call


def test_heard_and_unheard_words_are_apart_in_the_transcript() -> None:
    view = record_view(support_call())
    menu = next(r for r in view.transcript if r.who == "bot")
    assert (menu.text, menu.unheard) == (MENU_HEARD, MENU_UNHEARD)
    assert "cut off by speech" in menu.note
    answer = [r for r in view.transcript if r.who == "bot"][-1]
    assert answer.text == "Your balance is twelve dollars." and answer.unheard == ""


def test_a_turn_shows_where_the_bots_answer_spent_its_time() -> None:
    rows = record_view(support_call()).transcript
    billing = next(r for r in rows if r.who.startswith("caller") and "billing" in r.text)
    assert "bot answered after 200 ms" in billing.note
    assert "(endpointing 200, recognition 0, reply 30 ms)" in billing.note


def test_the_page_strikes_through_the_words_the_caller_never_heard() -> None:
    record = support_call()
    html = call_page(record, record_view(record))
    line = next(
        tr
        for tr in re.findall(r'<tr class="line" data-who="bot">.*?</tr>', html)
        if "billing" in tr
    )
    assert f'<td>{MENU_HEARD} <s class="unheard"' in line
    assert re.search(rf"<s class=\"unheard\"[^>]*>{MENU_UNHEARD}</s>", line)


def test_the_barge_in_is_marked_on_the_timeline_and_its_turn_drawn_as_one() -> None:
    record = support_call()
    html = call_page(record, record_view(record))
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert svg.count('class="barge-in-mark"') == 1
    assert "barge-in by speech at 1.35 s, stopped 180 ms later" in svg
    assert svg.count('class="utterance interrupted"') == 1 and svg.count('class="utterance"') == 2
    assert 'class="turn barge-in"' in svg
    assert svg.count('class="latency"') == 2  # both answered turns' brackets


def test_masked_keys_stay_masked_everywhere_on_the_page() -> None:
    record = support_call()
    html = call_page(record, record_view(record))
    assert f"keys: {PIN}" in html
    assert html.count("<title>key •</title>") == 4  # each key pressed, a tick, masked
    assert not re.search(r"key [0-9]", html)
    assert "••••••••5678" in html  # the caller's number, last four only, as kept


def test_the_recording_draws_both_waveforms_where_each_side_spoke() -> None:
    view = record_view(support_call(), stereo_wav(), audio_src="/calls/x/audio.wav")
    assert len(view.caller_peaks) == len(view.bot_peaks) == 1000
    loud = [i for i, (_, high) in enumerate(view.caller_peaks) if high > 0.1]
    assert loud[0] == 1300 // 6 and loud[-1] == 1799 // 6  # 6 ms a column
    assert max(h for _, h in view.bot_peaks) > 0.3
    html = call_page(support_call(), view)
    assert '<audio class="recording" controls preload="metadata" src="/calls/x/audio.wav">' in html


def test_a_call_without_a_recording_says_so_and_has_no_player() -> None:
    record = support_call(audio=False)
    html = call_page(record, record_view(record))
    assert "<audio" not in html and "No recording kept" in html
    assert '<g class="waveform caller"></g>' in html


def test_a_broken_recording_still_shows_the_rest_of_the_call() -> None:
    view = record_view(support_call(), b"RIFF not really", audio_src="/a.wav")
    assert view.caller_peaks == () and len(view.transcript) >= 5


def test_the_list_links_each_call_and_offers_older_ones() -> None:
    records = [support_call(f"CA{n}", outcome="failed" if n else "completed") for n in range(3)]
    summaries = [RecordSummary.of(r) for r in records]
    html = list_page(summaries, {"outcome": "failed"}, limit=3)
    assert re.findall(r'<a href="/calls/(CA\d)">', html) == ["CA0", "CA1", "CA2"]
    assert '<option value="failed" selected>' in html
    assert 'class="older" href="/calls?outcome=failed&amp;before=2026-12-04T18' in html


def test_words_from_the_call_are_escaped() -> None:
    record = support_call().model_copy(update={"errors": ["flow error at <script>x</script>"]})
    html = call_page(record, record_view(record))
    assert "<script>x" not in html and "&lt;script&gt;x" in html
