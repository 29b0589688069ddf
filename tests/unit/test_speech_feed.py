"""SpeechFeed: when the speech path is beyond mending, no utterance is left waiting (dead air)."""

from __future__ import annotations

import asyncio

import pytest

from ivr_bridge.call.playback import Playback
from ivr_bridge.call.speech_feed import SpeechFeed
from ivr_bridge.call.utterance import Utterance
from ivr_bridge.speech.session import SpeechAudio, SpeechSessionError
from tests.unit.speech_fakes import FakeSession


async def _send(event: str, text: str) -> None:
    return None


def _feed(session: FakeSession) -> SpeechFeed:
    return SpeechFeed(session, Playback(_send, "MZ1"), lambda kind, **fields: None)  # type: ignore[arg-type]


@pytest.mark.parametrize("ending", ["error", "end"])
async def test_a_speech_path_that_gives_up_fails_every_waiting_utterance(ending: str) -> None:
    session = FakeSession()
    feed = _feed(session)
    first, second = Utterance(1, "Hello?"), Utterance(2, "Are you there?")
    task = asyncio.create_task(feed.run())
    feed.start(first)
    feed.start(second)
    session.emit(SpeechAudio(b"\x01" * 800))
    if ending == "error":
        session.refuse("authentication_error")
    else:
        await session.close()  # ended without finish: a failure too
    with pytest.raises(SpeechSessionError):
        await asyncio.wait_for(task, 2)
    for utterance in (first, second):  # the dialog waiting on either hears of it at once
        with pytest.raises(SpeechSessionError):
            await asyncio.wait_for(asyncio.shield(utterance.done), 1)
