"""One thing the bot says: its text, its audio's progress from synthesis to the caller's ear."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ivr_bridge.audio.codec import ULAW_BYTES_PER_MS
from ivr_bridge.speech.session import WordTiming


@dataclass(frozen=True, slots=True)
class PlaybackResult:
    utterance_id: int
    played_ms: float
    """Audio Twilio confirmed as played to the caller."""
    interrupted: bool
    """Cleared before all of it played."""


@dataclass(eq=False)
class Utterance:
    id: int
    text: str
    bytes_received: int = 0
    bytes_sent: int = 0
    bytes_played: int = 0
    words: list[WordTiming] = field(default_factory=list)
    synthesis_complete: bool = False
    """The speech session acknowledged the flush: no more audio will arrive for it."""
    interrupted: bool = False
    done: asyncio.Future[PlaybackResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def played_ms(self) -> float:
        return self.bytes_played / ULAW_BYTES_PER_MS

    def settle(self) -> None:
        """Resolve ``done`` once nothing more can be played (all of it, or interrupted)."""
        if self.done.done():
            return
        finished = self.synthesis_complete and self.bytes_played >= self.bytes_received
        if finished or self.interrupted:
            self.done.set_result(PlaybackResult(self.id, self.played_ms, self.interrupted))
