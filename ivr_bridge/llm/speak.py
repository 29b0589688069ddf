"""What the LLM dialog needs from the conductor beyond ``CallControl``: speaking a text stream.

``SpeakStream.say_stream`` is the conductor capability: one utterance whose text arrives in
pieces. Until the conductor implements it, ``SentenceSpeaker`` adapts any ``CallControl`` by
saying each completed sentence with ``say`` (slower to first audio, same barge-in semantics).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from ivr_bridge.dialog.control import BargeInPolicy, CallControl, SayResult


@runtime_checkable
class SpeakStream(Protocol):
    async def say_stream(
        self, chunks: AsyncIterator[str], *, barge_in: BargeInPolicy | None = None
    ) -> SayResult:
        """Speak text as it arrives, as ONE utterance.

        - Each chunk goes to the speech session (``send_text``) as soon as it is yielded; the
          speech service buffers until it has enough context, so no sentence splitting here.
        - The utterance is interruptible (per ``barge_in``) from its first chunk on.
        - When ``chunks`` ends, flush once; return after the final mark echoed (heard in full).
        - On barge-in: stop pulling from ``chunks`` (the caller cancels the producer), reset the
          speech session as for ``say``, and return ``interrupted=True`` with ``heard_text`` from
          the played marks and word timestamps (``ivr_bridge.call.heard``).
        - ``SayResult.text`` is everything that was sent; if ``chunks`` yields nothing, return at
          once with empty text and nothing spoken. ``chunks`` never raises.
        """
        ...


_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


class SentenceSpeaker:
    """``say_stream`` over plain ``say``: a stop-gap for conductors without streaming text."""

    def __init__(self, call: CallControl) -> None:
        self._call = call

    async def say_stream(
        self, chunks: AsyncIterator[str], *, barge_in: BargeInPolicy | None = None
    ) -> SayResult:
        sent: list[str] = []
        heard: list[str] = []
        played_ms = 0.0
        pending = ""
        async for chunk in chunks:
            pending += chunk
            *sentences, pending = _SENTENCE_END.split(pending)
            for sentence in sentences:
                result = await self._call.say(sentence, barge_in=barge_in)
                sent.append(sentence)
                heard.append(result.heard_text)
                played_ms += result.played_ms
                if result.interrupted:
                    return _joined(sent, heard, played_ms, result)
        if pending.strip():
            result = await self._call.say(pending.strip(), barge_in=barge_in)
            sent.append(pending.strip())
            heard.append(result.heard_text)
            played_ms += result.played_ms
            if result.interrupted:
                return _joined(sent, heard, played_ms, result)
        text = " ".join(sent)
        return SayResult(text=text, heard_text=text, played_ms=played_ms)


def _joined(sent: list[str], heard: list[str], played_ms: float, last: SayResult) -> SayResult:
    return SayResult(
        text=" ".join(sent),
        heard_text=" ".join(h for h in heard if h),
        played_ms=played_ms,
        interrupted=True,
        interrupted_by=last.interrupted_by,
    )


def speaker_for(call: CallControl) -> SpeakStream:
    """The call itself once the conductor streams text; the sentence adapter until then."""
    if isinstance(call, SpeakStream):
        return call
    return SentenceSpeaker(call)
