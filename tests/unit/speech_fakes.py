"""A scripted fake speech session: the test decides what the 'service' sends and when."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

from ivr_bridge.speech.session import (
    FlushComplete,
    SpeechAudio,
    SpeechEvent,
    SpeechSessionClosed,
    SpeechSessionError,
)

_END = object()


class FakeSession:
    """Records every send; emits what the test pushes; ``drop()`` ends it like a lost socket."""

    def __init__(self, name: str = "s") -> None:
        self.name = name
        self.sent: list[tuple[str, object]] = []
        self._events: asyncio.Queue[object] = asyncio.Queue()
        self._nonces = itertools.count(1)
        self.closed = False

    # SpeechSession
    async def send_text(self, text: str) -> None:
        self._check()
        self.sent.append(("text", text))

    async def flush(self) -> int:
        self._check()
        nonce = next(self._nonces)
        self.sent.append(("flush", nonce))
        return nonce

    async def reset(self) -> int:
        self._check()
        nonce = next(self._nonces)
        self.sent.append(("reset", nonce))
        return nonce

    async def finish(self) -> None:
        self.sent.append(("finish", None))

    async def close(self) -> None:
        self.closed = True
        self._events.put_nowait(_END)

    async def events(self) -> AsyncIterator[SpeechEvent]:
        while True:
            item = await self._events.get()
            if item is _END:
                return
            if isinstance(item, SpeechSessionError):
                raise item
            assert isinstance(item, SpeechAudio | FlushComplete | object)
            yield item  # type: ignore[misc]

    # what the test does
    def emit(self, *events: SpeechEvent) -> None:
        for event in events:
            self._events.put_nowait(event)

    def drop(self, reason: str = "server went away") -> None:
        self._events.put_nowait(SpeechSessionClosed(1006, reason))

    def refuse(self, error_type: str) -> None:
        self._events.put_nowait(SpeechSessionError(error_type, "refused"))

    @property
    def texts(self) -> list[str]:
        return [str(value) for kind, value in self.sent if kind == "text"]

    def _check(self) -> None:
        if self.closed:
            raise SpeechSessionClosed(None, "closed by the client")
