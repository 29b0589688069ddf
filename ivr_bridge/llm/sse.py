"""An incremental Server-Sent Events parser (the WHATWG event-stream rules we need).

Both LLM wires (OpenAI-compatible ``data:`` chunks, Anthropic's named events) are SSE; parsing
it by the standard rather than by ``line.startswith("data: ")`` keeps us correct for servers
that split ``data`` across lines, omit the space after the colon, or send comments/keep-alives.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    """``message`` unless the server named it (Anthropic names every event)."""
    data: str


class SseParser:
    """Feed lines (with or without their line ending); get an event at each blank line."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed_line(self, raw: str) -> SseEvent | None:
        line = raw.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # comment / keep-alive
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        # ``id`` and ``retry`` mean nothing for a one-shot completion stream.
        return None

    def finish(self) -> SseEvent | None:
        """End of stream: the standard drops an unterminated event, but many servers forget the
        final blank line after ``[DONE]``; accept a complete ``data`` line anyway."""
        return self._dispatch()

    def _dispatch(self) -> SseEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SseEvent(self._event or "message", "\n".join(self._data))
        self._event = ""
        self._data = []
        return event
