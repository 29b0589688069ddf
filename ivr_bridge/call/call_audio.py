"""Both sides of a call as the caller lived it, on the call clock: the record's two channels.

The caller's channel is what Twilio sent us, placed by each frame's own timestamp. The bot's
channel is what the caller *heard*: Twilio plays our frames back to back from the moment each
arrives, so a frame starts where the previous one ended or, after a silence, when it was sent;
a ``clear`` empties Twilio's buffer, so everything placed past that moment is cut off again.
Audio sent and then cleared therefore never appears in a recording, which is what a support
line's owner must be able to trust when they listen to a complaint.

Kept cheap (bytes appended per 20 ms frame, no decoding) and bounded (``max_ms`` per channel).
With ``keep_audio`` off only the utterances' heard spans are tracked: the record still knows
when the caller heard each utterance, which is what turn latency is measured from.
"""

from __future__ import annotations

from dataclasses import dataclass

from ivr_bridge.audio.codec import ULAW_BYTES_PER_MS, ULAW_SILENCE


@dataclass(slots=True)
class HeardSpan:
    """When an utterance was audible to the caller (call ms)."""

    start_ms: float
    end_ms: float


class CallAudio:
    def __init__(self, *, keep_audio: bool, max_ms: int = 30 * 60_000) -> None:
        self.keep_audio = keep_audio
        self._max_bytes = max_ms * ULAW_BYTES_PER_MS
        self.caller = bytearray()
        self.bot = bytearray()
        self._bot_end_ms = 0.0
        self.spans: dict[int, HeardSpan] = {}
        self.truncated = False
        """A channel reached ``max_ms``: later audio was not kept."""

    def on_caller(self, at_ms: float, ulaw: bytes) -> None:
        if self.keep_audio:
            self._place(self.caller, at_ms, ulaw)

    def on_bot_sent(self, now_ms: float, utterance_id: int, ulaw: bytes) -> None:
        """A media frame went to Twilio at ``now_ms``: it plays once what is ahead of it has."""
        start = max(self._bot_end_ms, now_ms)
        self._bot_end_ms = start + len(ulaw) / ULAW_BYTES_PER_MS
        span = self.spans.get(utterance_id)
        if span is None:
            self.spans[utterance_id] = HeardSpan(start, self._bot_end_ms)
        else:
            span.end_ms = self._bot_end_ms
        if self.keep_audio:
            self._place(self.bot, start, ulaw)

    def on_clear(self, now_ms: float) -> None:
        """Twilio dropped what it had not played yet: it was never heard."""
        if self._bot_end_ms <= now_ms:
            return
        self._bot_end_ms = now_ms
        for uid, span in list(self.spans.items()):
            if span.start_ms >= now_ms:
                del self.spans[uid]
            elif span.end_ms > now_ms:
                span.end_ms = now_ms
        if self.keep_audio:
            del self.bot[round(now_ms * ULAW_BYTES_PER_MS) :]

    @property
    def duration_ms(self) -> float:
        return max(len(self.caller), len(self.bot)) / ULAW_BYTES_PER_MS

    def _place(self, track: bytearray, at_ms: float, ulaw: bytes) -> None:
        at = round(at_ms * ULAW_BYTES_PER_MS)
        end = at + len(ulaw)
        if end > self._max_bytes:
            self.truncated = True
            return
        if at > len(track):  # silence until then (the bot quiet, a frame lost)
            track.extend(ULAW_SILENCE * (at - len(track)))
        track[at:end] = ulaw  # a late frame overwrites its own place
