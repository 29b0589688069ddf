"""One model round: stream a completion into the call, with filler, fallback and retries.

The provider stream runs in its own task feeding a bounded queue; the conductor pulls text from
it (``say_stream``) while tokens still arrive. Timers are wall-clock, because a model's latency is
wall time the caller spends in silence:

- no first token after ``filler_after_ms`` → say the filler ("One moment.") and keep waiting;
- after the filler, at most ``max_dead_air_ms`` more → give up and say the fallback line;
- a retryable error before the first token → re-send with backoff (bounded); once any text or
  tool call has arrived the request is never re-sent, so nothing is spoken twice;
- a failure mid-answer ends the utterance with what was spoken and says the fallback line.

The tokens the provider reports are recorded as ``llm_usage`` (the call's metrics count them).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

from ivr_bridge.call.control import BargeInPolicy, CallControl, SayResult
from ivr_bridge.llm.provider import LLMProvider
from ivr_bridge.llm.settings import LLMSettings
from ivr_bridge.llm.types import (
    ChatRequest,
    Done,
    LLMError,
    TextDelta,
    ToolCall,
    ToolCallComplete,
    ToolCallDelta,
    Usage,
)

QUEUE_CHUNKS = 1024
"""Text pieces buffered between the model and the speech session (a reply is a few hundred)."""
_END = object()
_UNSPEAKABLE = str.maketrans("", "", "*#`_~")
"""Markdown marks a model may emit despite the prompt; read aloud they sound broken."""


class ModelStream:
    """One request to the provider (with bounded retries before its first event)."""

    def __init__(self, provider: LLMProvider, request: ChatRequest, settings: LLMSettings) -> None:
        self._provider = provider
        self._request = request
        self._settings = settings
        self._queue: asyncio.Queue[object] = asyncio.Queue(QUEUE_CHUNKS)
        self.tool_calls: list[ToolCall] = []
        self.error: LLMError | None = None
        self.finish_reason: str | None = None
        self.attempts = 0
        self.started = asyncio.Event()
        """Set at the first text or tool call, or when the request finally failed or ended."""
        self.has_text = False
        self.saw_tool_call = False
        """A tool call began: text that follows it is not spoken (the tool acts instead)."""
        self.first_event_at: float | None = None
        self.usage: Usage | None = None
        """Tokens the provider reported for the request (its ``Done``), if it got that far."""

    async def run(self) -> None:
        """Stream the reply; whatever happens, ``started`` is set and the text queue ends.

        An unexpected exception (a provider bug, a malformed chunk) becomes a non-retryable
        protocol error, so the round says the fallback line instead of leaving dead air.
        """
        try:
            await self._stream_with_retries()
        except LLMError as exc:
            self.error = exc
        except Exception as exc:  # any bug here must not silence the call
            self.error = LLMError("protocol", f"{type(exc).__name__}: {exc}"[:300], retryable=False)
        finally:
            self.started.set()
            await self._queue.put(_END)

    async def _stream_with_retries(self) -> None:
        while True:
            self.attempts += 1
            try:
                async for event in self._provider.stream(self._request):
                    if isinstance(event, TextDelta):
                        self._mark_started()
                        self.has_text = True
                        await self._queue.put(event.text)
                    elif isinstance(event, ToolCallDelta):
                        self._mark_started()
                        self.saw_tool_call = True
                    elif isinstance(event, ToolCallComplete):
                        self._mark_started()
                        self.saw_tool_call = True
                        self.tool_calls.append(event.call)
                    elif isinstance(event, Done):
                        self.finish_reason = event.finish_reason
                        self.usage = event.usage
                return
            except LLMError as exc:
                retry = (
                    exc.retryable
                    and self.first_event_at is None
                    and self.attempts <= self._settings.max_retries
                )
                if not retry:
                    raise
                backoff = self._settings.retry_backoff_ms / 1000 * 2 ** (self.attempts - 1)
                await asyncio.sleep(backoff)

    def _mark_started(self) -> None:
        if self.first_event_at is None:
            self.first_event_at = time.monotonic()
            self.started.set()

    async def text(self) -> AsyncIterator[str]:
        """The reply's text as it streams, pieces already queued joined into one send."""
        while True:
            item = await self._queue.get()
            parts: list[str] = []
            done = item is _END
            if not done:
                parts.append(str(item))
            while not done and not self._queue.empty():
                more = self._queue.get_nowait()
                if more is _END:
                    done = True
                else:
                    parts.append(str(more))
            piece = "".join(parts).translate(_UNSPEAKABLE)
            if piece:
                yield piece
            if done:
                return

    async def discard_text(self) -> None:
        """Drop queued text until the stream ends, so a full queue never blocks the stream."""
        async for _ in self.text():
            pass


RoundStatus = Literal["answered", "interrupted", "failed"]


@dataclass(slots=True)
class RoundResult:
    status: RoundStatus
    spoken: SayResult | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    error: LLMError | None = None
    first_token_ms: float | None = None
    filler_said: bool = False
    fallback: SayResult | None = None


async def run_round(
    call: CallControl,
    provider: LLMProvider,
    request: ChatRequest,
    settings: LLMSettings,
    *,
    barge_in: BargeInPolicy | None = None,
) -> RoundResult:
    """Stream one completion into the call; never leaves the caller in long silence."""
    started_at = time.monotonic()
    stream = ModelStream(provider, request, settings)
    task = asyncio.create_task(stream.run(), name="llm-stream")
    result = RoundResult("answered")
    try:
        if not await _wait(stream.started, settings.filler_after_ms):
            result.filler_said = True
            filler = await call.say(settings.filler_text, barge_in=barge_in)
            if filler.interrupted:  # the caller spoke over it: listen to them instead
                result.status = "interrupted"
                return result
            if not await _wait(stream.started, settings.max_dead_air_ms):
                call.record_event("llm_error", error="timeout", stage="first_token")
                return await _fallback(call, settings, result, barge_in, None)
        if stream.first_event_at is not None:
            result.first_token_ms = (stream.first_event_at - started_at) * 1000
        if stream.has_text or not stream.saw_tool_call:
            result.spoken = await call.say_stream(stream.text(), barge_in=barge_in)
            if result.spoken.interrupted:
                result.status = "interrupted"
                return result
        else:
            await stream.discard_text()
        await task
        result.tool_calls = list(stream.tool_calls)
        if stream.error is not None:
            call.record_event(
                "llm_error",
                error=stream.error.kind,
                status=stream.error.status,
                attempts=stream.attempts,
            )
            return await _fallback(call, settings, result, barge_in, stream.error)
        return result
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        _record_usage(call, stream.usage)


def _record_usage(call: CallControl, usage: Usage | None) -> None:
    """``llm_usage``: the tokens the round cost, when the provider said (metrics count them)."""
    if usage is not None and (usage.input_tokens is not None or usage.output_tokens is not None):
        call.record_event(
            "llm_usage", prompt_tokens=usage.input_tokens, completion_tokens=usage.output_tokens
        )


async def _wait(event: asyncio.Event, ms: float) -> bool:
    if event.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=ms / 1000)
    return event.is_set()


async def _fallback(
    call: CallControl,
    settings: LLMSettings,
    result: RoundResult,
    barge_in: BargeInPolicy | None,
    error: LLMError | None,
) -> RoundResult:
    result.status = "failed"
    result.error = error
    result.tool_calls = []
    result.fallback = await call.say(settings.fallback_text, barge_in=barge_in)
    return result
