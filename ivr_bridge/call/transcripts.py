"""What the bot said on recent calls, as the bridge knows it: each utterance's text and the
part of it the caller heard (cut at a barge-in by the playback marks).

Kept in memory, for the last ``max_calls`` calls only, so a tester that started this bridge can
check its own speech-to-text of the call against the bridge's account of it (the durable call
record, with recordings and retention, is a separate concern).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BotLine:
    text: str
    heard_text: str
    interrupted: bool


class CallTranscripts:
    """Bot lines by CallSid, bounded: the oldest call is forgotten first."""

    def __init__(self, max_calls: int = 500) -> None:
        self._calls: OrderedDict[str, list[BotLine]] = OrderedDict()
        self._max_calls = max_calls

    def add(self, call_sid: str, line: BotLine) -> None:
        lines = self._calls.get(call_sid)
        if lines is None:
            lines = self._calls[call_sid] = []
            while len(self._calls) > self._max_calls:
                self._calls.popitem(last=False)
        lines.append(line)

    def lines(self, call_sid: str) -> list[BotLine]:
        return list(self._calls.get(call_sid, ()))
