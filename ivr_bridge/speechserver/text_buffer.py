"""Splits streamed text into speakable segments, the way LMNT buffers session text.

Clients may split text anywhere (mid-word, mid-sentence), so a segment is released only at a
sentence boundary that is confirmed by following whitespace ("3.5" never splits), or when the
buffer has grown long enough that waiting for more context would only add latency.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*\s+|\n+")
_CLAUSE_BREAK = re.compile(r"[,;:—]\s+")

MAX_CONTEXT_CHARS = 220
"""Without a sentence end, speak once this much text is buffered (cut at a clause or a space)."""


class TextBuffer:
    def __init__(self, max_context_chars: int = MAX_CONTEXT_CHARS) -> None:
        self._text = ""
        self._max = max_context_chars

    @property
    def pending(self) -> str:
        return self._text

    def append(self, text: str) -> list[str]:
        """Add text; return the segments now ready to speak (possibly none)."""
        self._text += text
        ready: list[str] = []
        while True:
            cut = self._next_cut()
            if cut is None:
                break
            segment, self._text = self._text[:cut], self._text[cut:]
            if segment.strip():
                ready.append(segment.strip())
        return ready

    def flush(self) -> str | None:
        """Everything buffered, as one final segment (None when only whitespace is left)."""
        rest, self._text = self._text.strip(), ""
        return rest or None

    def clear(self) -> None:
        self._text = ""

    def _next_cut(self) -> int | None:
        match = _SENTENCE_END.search(self._text)
        if match is not None and match.end() <= self._max:
            return match.end()
        # No sentence end within reach: waiting longer only adds latency (and a sentence longer
        # than the synthesizer accepts would fail), so cut at a clause or a space instead.
        if len(self._text) < self._max:
            return None
        window = self._text[: self._max]
        clauses = list(_CLAUSE_BREAK.finditer(window))
        if clauses:
            return clauses[-1].end()
        space = window.rfind(" ")
        return space + 1 if space > 0 else self._max
