"""What the LLM dialog needs from the conductor beyond ``CallControl``: speaking a text stream.

``SpeakStream.say_stream`` is the conductor capability: one utterance whose text arrives in
pieces, sent to the speech session as it streams.
"""

from __future__ import annotations

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


def speaker_for(call: CallControl) -> SpeakStream:
    """The call itself: the conductor streams text into one utterance."""
    if not isinstance(call, SpeakStream):
        raise TypeError(f"{type(call).__name__} cannot speak a text stream (no say_stream)")
    return call
