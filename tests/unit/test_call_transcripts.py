"""The bridge's memory of what it said: per call, in order, the oldest call forgotten first."""

from __future__ import annotations

from ivr_bridge.call.transcripts import BotLine, CallTranscripts


def test_lines_come_back_per_call_in_the_order_said() -> None:
    transcripts = CallTranscripts()
    transcripts.add("CA1", BotLine("Hello there.", "Hello there.", False))
    transcripts.add("CA2", BotLine("Other call.", "Other call.", False))
    transcripts.add("CA1", BotLine("Press one or two.", "Press one", True))
    assert [line.heard_text for line in transcripts.lines("CA1")] == ["Hello there.", "Press one"]
    assert transcripts.lines("CA1")[1].interrupted
    assert transcripts.lines("CA9") == []


def test_only_the_most_recent_calls_are_kept() -> None:
    transcripts = CallTranscripts(max_calls=2)
    for sid in ("CA1", "CA2", "CA3"):
        transcripts.add(sid, BotLine(sid, sid, False))
    assert transcripts.lines("CA1") == []
    assert [line.text for line in transcripts.lines("CA3")] == ["CA3"]


def test_a_returned_list_is_a_copy() -> None:
    transcripts = CallTranscripts()
    transcripts.add("CA1", BotLine("Hi.", "Hi.", False))
    transcripts.lines("CA1").clear()
    assert len(transcripts.lines("CA1")) == 1
