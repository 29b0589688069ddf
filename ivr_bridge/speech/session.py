"""The small speech-session interface the call conductor depends on.

LMNT 1.1 is the first implementation (``ivr_bridge.speech.lmnt``); other TTS providers can be added
behind the same interface. Audio events always carry raw 8 kHz µ-law, never container headers, and
never audio that belongs to text discarded by a ``reset`` (the implementation drops it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from ivr_bridge.errors import SpeechError


@dataclass(frozen=True, slots=True)
class SessionReady:
    request_id: str


@dataclass(frozen=True, slots=True)
class SpeechAudio:
    """Raw µ-law bytes (header already stripped), in order."""

    data: bytes


@dataclass(frozen=True, slots=True)
class WordTiming:
    text: str
    start: float
    """Seconds from the start of the current utterance (since the last flush/reset ack)."""
    duration: float


@dataclass(frozen=True, slots=True)
class SpeechTimestamps:
    words: tuple[WordTiming, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class FlushComplete:
    nonce: int


@dataclass(frozen=True, slots=True)
class ResetComplete:
    nonce: int


SpeechEvent = SessionReady | SpeechAudio | SpeechTimestamps | FlushComplete | ResetComplete


class SpeechSessionError(SpeechError):
    """The speech service refused or failed the session (LMNT's error envelope, typed)."""

    def __init__(self, error_type: str, message: str, request_id: str | None = None) -> None:
        super().__init__(
            f"{error_type}: {message}" + (f" (request {request_id})" if request_id else "")
        )
        self.error_type = error_type
        self.message = message
        self.request_id = request_id


class SpeechSessionClosed(SpeechSessionError):
    """The socket ended before the client finished: a mid-flight failure, never a completion."""

    def __init__(self, code: int | None, reason: str, request_id: str | None = None) -> None:
        super().__init__(
            "connection_closed", f"closed early (code={code}, reason={reason!r})", request_id
        )
        self.code = code
        self.reason = reason


class SpeechSession(Protocol):
    """What the conductor needs from a streaming TTS session."""

    async def send_text(self, text: str) -> None: ...

    async def flush(self) -> int:
        """Speak everything buffered; returns the nonce its ``FlushComplete`` will carry."""
        ...

    async def reset(self) -> int:
        """Drop buffered text and in-flight audio; returns the nonce of its ``ResetComplete``."""
        ...

    async def finish(self) -> None:
        """No more text: the service speaks the rest, then closes the session itself."""
        ...

    async def close(self) -> None: ...

    def events(self) -> AsyncIterator[SpeechEvent]:
        """Events in arrival order. Ends normally only after ``finish`` was acknowledged by a clean
        close; raises ``SpeechSessionError`` / ``SpeechSessionClosed`` otherwise."""
        ...
