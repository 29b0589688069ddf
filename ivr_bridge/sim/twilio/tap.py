"""What a line tells whoever records it: every 20 ms frame both ways, and what happened when.

The transport (a simulated Twilio stream, or a real call's stream served to the tester) only
reports; the scenario layer's :class:`~ivr_bridge.sim.scenario.recording.CallRecorder` keeps the
audio, finds the utterances and stamps the events, so the transport never imports it.
"""

from __future__ import annotations

from typing import Any, Protocol

VOICED_RMS = 64
"""A heard frame at or above this RMS (16-bit PCM) is the far end speaking, not line hiss."""


class LineTap(Protocol):
    utterance_gap_ms: float

    def frame(self, t_ms: float, caller_ulaw: bytes, heard_ulaw: bytes, bot_bytes: int) -> bool:
        """One 20 ms tick at ``t_ms``: what the caller sent and heard (``bot_bytes`` of it
        came from the far end); True when the far end was heard speaking (voiced)."""

    def event(self, t_ms: float, kind: str, /, **fields: Any) -> object: ...

    def cleared(self) -> None:
        """The utterance being heard stopped here (a ``clear``, or its stream ended)."""
