"""Recently spoken sentences, kept: an IVR says the same few prompts on every call.

"Thanks for calling Example Bank support." is synthesised once and then served from memory to
the next thousand callers. That matters most for the neural voice, which costs ~10 ms of a core
per second of speech: thirty callers answered in the same second would otherwise queue thirty
syntheses of one greeting behind one another, and the last of them would wait over a second in
silence. Concurrent requests for the same sentence share one synthesis (single flight), so a
burst costs one synthesis as well.

Keys are everything that changes the audio (text, voice, rate, speed, language); the cache is
bounded by the bytes of audio it holds and forgets the least recently used sentence first. A
failed synthesis is never cached: the next request tries again.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from ivr_bridge.speechserver.engines import Synthesizer
from ivr_bridge.speechserver.synth import Synthesis

_Key = tuple[str, str, int, float, str]

DEFAULT_CACHE_BYTES = 64 * 1024 * 1024
"""64 MiB: ~70 minutes of 8 kHz audio, ~23 of 24 kHz."""
MAX_CACHED_TEXT = 400
"""Longer texts (an LLM's paragraph) are rarely said twice: not worth their memory."""


class _LeaderGone(Exception):
    """The request whose synthesis others were waiting for was cancelled."""


class PromptCache:
    """A :class:`Synthesizer` that remembers what another one said."""

    def __init__(self, inner: Synthesizer, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self._inner = inner
        self._max_bytes = max_bytes
        self._entries: OrderedDict[_Key, Synthesis] = OrderedDict()
        self._bytes = 0
        self._pending: dict[_Key, asyncio.Future[Synthesis]] = {}
        self.hits = 0
        self.misses = 0

    @property
    def inner(self) -> Synthesizer:
        return self._inner

    async def synthesize(
        self,
        text: str,
        voice: str,
        sample_rate: int,
        speed: float = 1.0,
        language: str | None = None,
    ) -> Synthesis:
        if len(text) > MAX_CACHED_TEXT or self._max_bytes <= 0:
            self.misses += 1
            return await self._inner.synthesize(text, voice, sample_rate, speed, language)
        key = (text, voice.strip().lower(), sample_rate, round(speed, 3), language or "")
        cached = self._entries.get(key)
        if cached is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            return cached
        pending = self._pending.get(key)
        if pending is not None:
            self.hits += 1
            try:
                return await asyncio.shield(pending)
            except _LeaderGone:  # the session that asked first hung up: ask again ourselves
                return await self.synthesize(text, voice, sample_rate, speed, language)
        self.misses += 1
        future: asyncio.Future[Synthesis] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            result = await self._inner.synthesize(text, voice, sample_rate, speed, language)
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else _LeaderGone())
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        finally:
            self._pending.pop(key, None)
        future.set_result(result)
        self._store(key, result)
        return result

    def _store(self, key: _Key, result: Synthesis) -> None:
        size = len(result.pcm16)
        if size > self._max_bytes:
            return
        self._entries[key] = result
        self._bytes += size
        while self._bytes > self._max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped.pcm16)
