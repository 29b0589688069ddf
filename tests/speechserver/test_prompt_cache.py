"""The prompt cache: a repeated sentence is synthesised once, a burst shares one synthesis."""

from __future__ import annotations

import asyncio

import pytest

from ivr_bridge.speechserver.prompt_cache import PromptCache
from ivr_bridge.speechserver.synth import Synthesis, SynthesisError


class CountingSynth:
    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[str] = []
        self.release = asyncio.Event()
        self.release.set()
        self._fail = fail_first

    async def synthesize(
        self,
        text: str,
        voice: str,
        sample_rate: int,
        speed: float = 1.0,
        language: str | None = None,
    ) -> Synthesis:
        self.calls.append(text)
        await self.release.wait()
        if self._fail:
            self._fail -= 1
            raise SynthesisError("engine failed")
        return Synthesis(pcm16=b"\x01\x00" * 800, sample_rate=sample_rate)


async def test_the_same_prompt_is_synthesised_once() -> None:
    inner = CountingSynth()
    cache = PromptCache(inner)
    first = await cache.synthesize("Thanks for calling.", "heart", 8000)
    again = await cache.synthesize("Thanks for calling.", "HEART", 8000)
    assert again is first and inner.calls == ["Thanks for calling."]
    await cache.synthesize("Thanks for calling.", "heart", 16000)  # another rate: other audio
    await cache.synthesize("Thanks for calling.", "leah", 8000)
    assert len(inner.calls) == 3 and (cache.hits, cache.misses) == (1, 3)


async def test_a_burst_of_callers_shares_one_synthesis() -> None:
    inner = CountingSynth()
    inner.release.clear()
    cache = PromptCache(inner)
    waiting = [asyncio.create_task(cache.synthesize("Hello.", "heart", 8000)) for _ in range(30)]
    await asyncio.sleep(0)
    inner.release.set()
    results = await asyncio.gather(*waiting)
    assert inner.calls == ["Hello."] and all(r is results[0] for r in results)


async def test_a_failure_is_not_remembered() -> None:
    inner = CountingSynth(fail_first=1)
    cache = PromptCache(inner)
    with pytest.raises(SynthesisError):
        await cache.synthesize("Hello.", "heart", 8000)
    assert (await cache.synthesize("Hello.", "heart", 8000)).pcm16
    assert len(inner.calls) == 2


async def test_waiters_go_on_when_the_first_asker_hangs_up() -> None:
    inner = CountingSynth()
    inner.release.clear()
    cache = PromptCache(inner)
    leader = asyncio.create_task(cache.synthesize("Hello.", "heart", 8000))
    await asyncio.sleep(0)
    follower = asyncio.create_task(cache.synthesize("Hello.", "heart", 8000))
    await asyncio.sleep(0)
    leader.cancel()
    await asyncio.sleep(0)
    inner.release.set()
    assert (await follower).pcm16 and leader.cancelled()


async def test_the_oldest_prompt_goes_when_memory_is_full() -> None:
    inner = CountingSynth()
    cache = PromptCache(inner, max_bytes=3200)  # two prompts of 1600 bytes
    for text in ("one", "two", "three"):
        await cache.synthesize(text, "heart", 8000)
    await cache.synthesize("three", "heart", 8000)
    await cache.synthesize("one", "heart", 8000)
    assert inner.calls == ["one", "two", "three", "one"]
