"""SpeechFeed: a speech service that goes quiet mid-utterance ends the wait, not the caller's
patience; an idle one (nothing owed) is left alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ivr_bridge.call.playback import Playback
from ivr_bridge.call.speech_feed import SpeechFeed
from ivr_bridge.call.utterance import Utterance
from ivr_bridge.speech.session import SpeechEvent, SpeechSessionError


class SilentSession:
    """Connected and polite, but never sends a thing."""

    def __init__(self) -> None:
        self._closed = asyncio.Event()

    async def events(self) -> AsyncIterator[SpeechEvent]:
        await self._closed.wait()
        return
        yield  # an async generator that ends only when closed

    async def reset(self) -> int:
        return 1


async def _send(event: str, text: str) -> None:
    return None


def _feed(session: SilentSession) -> SpeechFeed:
    playback = Playback(_send, "MZ1")
    return SpeechFeed(session, playback, lambda kind, **fields: None, stall_s=0.2)  # type: ignore[arg-type]


async def test_a_quiet_service_mid_utterance_fails_the_utterance() -> None:
    feed = _feed(SilentSession())
    utterance = Utterance(1, "Hello?")
    task = asyncio.create_task(feed.run())
    await asyncio.sleep(0.05)  # the feed is already waiting when the utterance starts
    feed.start(utterance)
    # The dialog waiting for the utterance hears about it (and apologises), within ~1.5 stalls.
    with pytest.raises(SpeechSessionError, match="sent nothing"):
        await asyncio.wait_for(asyncio.shield(utterance.done), 2)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_an_idle_service_is_not_a_failure() -> None:
    session = SilentSession()
    task = asyncio.create_task(_feed(session).run())
    await asyncio.sleep(0.5)  # several stall periods with nothing owed
    assert not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
