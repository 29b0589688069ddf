"""An LLM turn heard ahead: the caller's words at each pause, and a reply started on them.

The LLM dialog listens ahead (``call.lookahead``): at each pause of the caller's the utterance
so far is transcribed, and

- a pause whose words end as a sentence (``turn_end.ends_as_sentence``, or Deepgram's own
  ``speech_final``) ends the turn after ``sentence_silence_ms`` (450 ms) instead of 600;
- for such a pause the model is asked at once (``on_draft``: a *speculative* reply), while the
  endpointing wait still runs (a pause that does not look like a turn's end asks nothing: each
  request costs, and callers pause mid-sentence often); when the utterance is delivered with
  exactly those words the reply already streaming is the turn's (``take``), so the model's
  latency overlaps the wait;
- the caller goes on (``on_resumed``), or the delivered utterance is not the drafted one: the
  speculative request is cancelled before anything of it was spoken (text is only pulled into
  the call once the turn is certain). Each fate is an event (``speculative_reply``:
  ``kept`` | ``dropped``), counted on ``/metrics``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from ivr_bridge.call.control import CallControl
from ivr_bridge.call.inputs import SpeechInput
from ivr_bridge.call.lookahead import Ahead, Verdict
from ivr_bridge.dialog.llm_turn import ModelStream, start_model
from ivr_bridge.dialog.services import LiveTranscriber
from ivr_bridge.dialog.turn_end import ends_as_sentence
from ivr_bridge.llm.provider import LLMProvider
from ivr_bridge.llm.settings import LLMSettings
from ivr_bridge.llm.types import ChatRequest
from ivr_bridge.recognition.models import Transcription


class Transcriber(Protocol):
    async def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcription: ...


class Speculation:
    """At most one reply started before the caller's turn was certain."""

    def __init__(
        self,
        call: CallControl,
        provider: LLMProvider,
        settings: LLMSettings,
        request_for: Callable[[str], ChatRequest],
    ) -> None:
        self._call = call
        self._provider = provider
        self._settings = settings
        self._request_for = request_for
        self._draft: Transcription | None = None
        self._stream: ModelStream | None = None
        self.enabled = True
        """Off while the dialog is answering (a draft then is the next turn's barge-in)."""

    def start(self, draft: Transcription) -> None:
        if not self.enabled or not draft.text.strip():
            return
        self.drop("superseded")
        self._draft = draft
        request = self._request_for(draft.text.strip())
        self._stream = start_model(self._provider, request, self._settings)

    def take(self, result: Transcription) -> ModelStream | None:
        """The running reply, if it was started on exactly ``result`` (else it is dropped)."""
        if self._stream is None:
            return None
        if self._draft is not result:
            self.drop("other_words")
            return None
        stream, self._stream, self._draft = self._stream, None, None
        self._call.record_event("speculative_reply", result="kept")
        return stream

    def drop(self, why: str) -> None:
        stream, self._stream, self._draft = self._stream, None, None
        if stream is None:
            return
        self._call.record_event("speculative_reply", result="dropped", why=why)
        _cancel_soon(stream)

    async def close(self) -> None:
        stream, self._stream, self._draft = self._stream, None, None
        if stream is not None:
            await stream.cancel()


_cancelling: set[asyncio.Task[Any]] = set()


def _cancel_soon(stream: ModelStream) -> None:
    """Cancel from a synchronous callback: the awaiting is a task of its own (kept referenced)."""
    task = asyncio.ensure_future(stream.cancel())
    _cancelling.add(task)
    task.add_done_callback(_cancelling.discard)


class TurnAhead(Ahead[Transcription]):
    """The LLM dialog's listening ahead: transcribe at pauses, speculate on sentence ends."""

    def __init__(
        self,
        transcriber: Transcriber,
        speculation: Speculation | None,
        live: LiveTranscriber | None = None,
    ) -> None:
        self._transcriber = transcriber
        self._speculation = speculation
        self._live = live
        self._final: Transcription | None = None
        """The last live result Deepgram itself called the end of an utterance."""

    def hear(self, at_ms: float, ulaw: bytes) -> None:
        if self._live is not None:
            self._live.feed(at_ms, ulaw)

    async def recognize(self, speech: SpeechInput) -> Transcription:
        if self._live is not None:
            result = await self._live.transcript(speech.start_ms, speech.end_ms)
            if self._live.speech_final_at(speech.voice_end_ms):
                self._final = result
            return result
        return await self._transcriber.transcribe(speech.pcm16, 8000)

    def verdict(self, result: Transcription) -> Verdict | None:
        final = result is self._final or ends_as_sentence(result.text)
        return "sentence" if final and result.text.strip() else None

    def on_draft(self, result: Transcription, speech: SpeechInput) -> None:
        # Only a turn that looks over is worth a request: every pause mid-sentence would be a
        # billed request thrown away (and a real model's answer is not free to discard).
        if self._speculation is not None and self.verdict(result) is not None:
            self._speculation.start(result)

    def on_resumed(self) -> None:
        if self._speculation is not None:
            self._speculation.drop("caller_went_on")
