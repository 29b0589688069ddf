"""One model round: stream a completion into the call, with filler, hold lines and fallback.

The provider stream runs in its own task (owned by ``ModelStream``) feeding a bounded queue; the
conductor pulls text from it (``say_stream``) while tokens still arrive. Timers are wall-clock,
because a model's latency is wall time the caller spends in silence, and they count from the
caller's end of speech, not from the request: endpointing and speech-to-text already kept the
caller waiting ``waited_ms`` when the round starts.

- no first token ``filler_after_ms`` after the caller stopped talking → the filler ("One
  moment."), at once if endpointing and STT already took that long;
- still none → a short hold line (``hold_texts``, cycling) each time the caller has heard
  ``max_dead_air_ms`` of silence since the last line ended;
- the first token arrives while a line plays → the answer follows right after that line;
- no first token ``first_token_timeout_s`` after the request → the fallback line;
- one request per caller turn once anything was said: a retryable error before the first token
  is re-sent (bounded, with backoff) only while the caller has heard nothing for this round, and
  a first-token timeout never is (a slow model re-asked is as slow);
- a failure mid-answer ends the utterance with what was spoken and says the fallback line.

``start_model`` starts a request before the round (a speculative start while the caller's turn
is still uncertain); ``run_round(stream=...)`` then uses it, ``ModelStream.cancel`` drops it.
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
    LLMTimeout,
    TextDelta,
    ToolCall,
    ToolCallComplete,
    ToolCallDelta,
    Usage,
)

QUEUE_CHUNKS = 1024
"""Text pieces buffered between the model and the speech session (a reply is a few hundred)."""
CANCEL_WAIT_S = 2.0
"""How long ``ModelStream.cancel`` waits for the cancelled task to finish (it closes a socket)."""
_TIMER_SLACK_S = 0.005
"""The event loop may fire a timer this early (its clock resolution)."""
_END = object()
_UNSPEAKABLE = str.maketrans("", "", "*#`_~")
"""Markdown marks a model may emit despite the prompt; read aloud they sound broken."""


class ModelStream:
    """One request to the provider (with bounded retries before its first event).

    Made by ``start_model`` (or by ``run_round``); the task streaming it belongs to this object:
    ``cancel()`` ends it and waits for it, so a dropped (speculative) request leaves nothing behind.
    """

    def __init__(self, provider: LLMProvider, request: ChatRequest, settings: LLMSettings) -> None:
        self._provider = provider
        self._request = request
        self._settings = settings
        self._queue: asyncio.Queue[object] = asyncio.Queue(QUEUE_CHUNKS)
        self._task: asyncio.Task[None] | None = None
        self.tool_calls: list[ToolCall] = []
        self.error: LLMError | None = None
        self.finish_reason: str | None = None
        self.attempts = 0
        self.started = asyncio.Event()
        """Set at the first text or tool call, or when the request finally failed or ended."""
        self.has_text = False
        self.saw_tool_call = False
        """A tool call began: text that follows it is not spoken (the tool acts instead)."""
        self.sent_at = time.monotonic()
        """When the request was first sent (``start``): the round's first-token limit counts
        from here, so a speculative request started earlier is not given extra time."""
        self.first_event_at: float | None = None
        self.usage: Usage | None = None
        """Tokens the provider reported for the request (its ``Done``), if it got that far."""
        self.caller_heard_wait = False
        """Set by the round once the caller heard a filler for this request: from then on it is
        never re-sent (the caller already waited; a re-send starts the wait over)."""

    def start(self) -> None:
        """Send the request (once; later calls do nothing)."""
        if self._task is None:
            self.sent_at = time.monotonic()
            self._task = asyncio.create_task(self.run(), name="llm-stream")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def finished(self) -> None:
        """Wait for the stream to end (its outcome is in ``error``/``tool_calls``)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def cancel(self, timeout_s: float = CANCEL_WAIT_S) -> None:
        """Stop the request and wait (at most ``timeout_s``) until its task has ended."""
        task = self._task
        if task is None:
            return
        if not task.done():
            task.cancel()
        await asyncio.wait({task}, timeout=timeout_s)
        if task.done() and not task.cancelled():
            task.exception()  # run() never raises; this only marks the outcome as retrieved

    async def run(self) -> None:
        """Stream the reply; whatever happens, ``started`` is set and the text queue ends.

        An unexpected exception (a provider bug, a malformed chunk) becomes a non-retryable
        protocol error, so the round says the fallback line instead of leaving dead air.
        """
        try:
            try:
                await self._stream_with_retries()
            except LLMError as exc:
                self.error = exc
            except Exception as exc:  # any bug here must not silence the call
                self.error = LLMError(
                    "protocol", f"{type(exc).__name__}: {exc}"[:300], retryable=False
                )
            self.started.set()
            await self._queue.put(_END)
        except asyncio.CancelledError:
            self.started.set()
            self._end_now()
            raise

    def _end_now(self) -> None:
        """End the text queue without waiting (cancelled: nobody may be reading any more)."""
        while True:
            try:
                self._queue.put_nowait(_END)
                return
            except asyncio.QueueFull:
                self._queue.get_nowait()

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
                if not self._may_resend(exc):
                    raise
                backoff = self._settings.retry_backoff_ms / 1000 * 2 ** (self.attempts - 1)
                await asyncio.sleep(backoff)
                if self.caller_heard_wait:  # a filler began during the backoff: one request
                    raise

    def _may_resend(self, exc: LLMError) -> bool:
        slow_model = isinstance(exc, LLMTimeout) and exc.stage == "first_token"
        return (
            exc.retryable
            and not slow_model
            and not self.caller_heard_wait
            and self.first_event_at is None
            and self.attempts <= self._settings.max_retries
        )

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


def start_model(provider: LLMProvider, request: ChatRequest, settings: LLMSettings) -> ModelStream:
    """Send ``request`` now; hand the stream to ``run_round(stream=...)`` or ``cancel()`` it."""
    stream = ModelStream(provider, request, settings)
    stream.start()
    return stream


RoundStatus = Literal["answered", "interrupted", "failed"]


@dataclass(slots=True)
class RoundResult:
    status: RoundStatus
    spoken: SayResult | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    error: LLMError | None = None
    first_token_ms: float | None = None
    """Request sent → first text or tool call (wall ms)."""
    fillers: int = 0
    """Filler and hold lines said while waiting for the first token."""
    waited_ms: float = 0.0
    """How long the caller had already been waiting in silence when the round started."""
    fallback: SayResult | None = None

    @property
    def filler_said(self) -> bool:
        return self.fillers > 0


async def run_round(
    call: CallControl,
    provider: LLMProvider,
    request: ChatRequest,
    settings: LLMSettings,
    *,
    barge_in: BargeInPolicy | None = None,
    waited_ms: float = 0.0,
    stream: ModelStream | None = None,
) -> RoundResult:
    """Stream one completion into the call; never leaves the caller in long silence.

    ``waited_ms``: how long the caller has already been silent, waiting for us (since the end of
    their speech, or since the last thing they heard), so the filler comes that much sooner.
    ``stream``: a request already started with ``start_model`` (it must be for ``request``);
    the round then owns it. Without it the round sends ``request`` itself.
    """
    if stream is None:
        stream = ModelStream(provider, request, settings)
    stream.start()
    result = RoundResult("answered", waited_ms=waited_ms)
    deadline = stream.sent_at + settings.first_token_timeout_s
    next_line = time.monotonic() + max(0.0, settings.filler_after_ms - waited_ms) / 1000
    try:
        while not await _wait_until(stream.started, min(next_line, deadline)):
            if time.monotonic() >= deadline - _TIMER_SLACK_S:
                call.record_event(
                    "llm_error", error="timeout", stage="first_token", attempts=stream.attempts
                )
                return await _fallback(call, settings, result, barge_in, None)
            stream.caller_heard_wait = True
            line = _waiting_line(settings, result.fillers)
            result.fillers += 1
            said = await call.say(line, barge_in=barge_in)
            if said.interrupted:  # the caller spoke over it: listen to them instead
                result.status = "interrupted"
                return result
            # Answer at once if it came while the line played; else the next line is due once
            # the caller has heard max_dead_air_ms of silence.
            next_line = time.monotonic() + settings.max_dead_air_ms / 1000
        if stream.first_event_at is not None:
            result.first_token_ms = (stream.first_event_at - stream.sent_at) * 1000
        if stream.has_text or not stream.saw_tool_call:
            result.spoken = await call.say_stream(stream.text(), barge_in=barge_in)
            if result.spoken.interrupted:
                result.status = "interrupted"
                return result
        else:
            await stream.discard_text()
        await stream.finished()
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
        await stream.cancel()
        _record_usage(call, stream.usage)


def _waiting_line(settings: LLMSettings, said: int) -> str:
    """The filler first, then the hold lines in turn."""
    if said == 0:
        return settings.filler_text
    return settings.hold_texts[(said - 1) % len(settings.hold_texts)]


def _record_usage(call: CallControl, usage: Usage | None) -> None:
    """``llm_usage``: the tokens the round cost, when the provider said (metrics count them)."""
    if usage is not None and (usage.input_tokens is not None or usage.output_tokens is not None):
        call.record_event(
            "llm_usage", prompt_tokens=usage.input_tokens, completion_tokens=usage.output_tokens
        )


async def _wait_until(event: asyncio.Event, at: float) -> bool:
    """Wait for ``event`` until monotonic time ``at``; whether it is set."""
    if event.is_set():
        return True
    timeout = at - time.monotonic()
    if timeout > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=timeout)
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
