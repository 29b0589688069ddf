"""The LLM dialog: listen, transcribe, stream the model's answer, run its tools, repeat.

It drives the call only through ``CallControl`` (``say_stream`` for the model's text), so the
flow runner's ``llm`` step can hand it the call and get back where to continue (``goto_step``),
and unit tests can drive it with a scripted fake call and a stand-in model server.

It listens ahead (``llm_ahead``): the caller is transcribed at each pause, a turn that ends as
a sentence ends after the short wait, and the model is asked while the wait still runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal, Protocol

from ivr_bridge.call.control import BargeInPolicy, CallControl
from ivr_bridge.call.inputs import DtmfInput, SpeechAbandoned, SpeechInput, SpeechStarted
from ivr_bridge.dialog.llm_ahead import Speculation, TurnAhead
from ivr_bridge.dialog.llm_turn import ModelStream, RoundResult, run_round
from ivr_bridge.dialog.services import LiveTranscriber
from ivr_bridge.llm.history import Conversation
from ivr_bridge.llm.provider import LLMProvider
from ivr_bridge.llm.settings import LLMSettings
from ivr_bridge.llm.tools import (
    END_CALL,
    GOTO_STEP,
    TRANSFER_CALL,
    ToolConfig,
    ToolResult,
    check_goto,
    check_transfer,
    error_result,
    find_http_tool,
    run_http_tool,
    tool_specs,
)
from ivr_bridge.llm.types import ChatRequest
from ivr_bridge.recognition.models import Transcription

_NOTICE = BargeInPolicy("none")


class Transcriber(Protocol):
    async def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcription: ...


@dataclass(frozen=True, slots=True)
class LlmDialogConfig:
    settings: LLMSettings
    tools: ToolConfig = field(default_factory=ToolConfig)
    greeting: str | None = None
    """Said first (and remembered as the assistant's); None: wait for the caller."""
    barge_in: BargeInPolicy | None = None
    no_input_timeout_ms: float = 8000
    max_no_input: int = 2
    max_turns: int | None = None
    """Caller turns answered before the dialog says goodbye and hangs up (None: no limit)."""
    reprompt_text: str = "Are you still there?"
    goodbye_text: str = "Thanks for calling. Goodbye."
    failure_goodbye_text: str = (
        "I'm sorry, I can't help right now. Please call again later. Goodbye."
    )


@dataclass(frozen=True, slots=True)
class LlmOutcome:
    """How the dialog ended: the flow continues at ``step_id`` (goto) or the call is over."""

    kind: Literal["goto", "hangup", "transfer"]
    step_id: str | None = None
    number: str | None = None


class LlmDialog:
    def __init__(
        self,
        call: CallControl,
        provider: LLMProvider,
        transcriber: Transcriber,
        config: LlmDialogConfig,
        conversation: Conversation,
        live: LiveTranscriber | None = None,
    ) -> None:
        """``live``: a recogniser streaming the whole call (Deepgram live) instead of
        ``transcriber`` on each utterance."""
        self.call = call
        self.provider = provider
        self.transcriber = transcriber
        self.config = config
        self.conversation = conversation
        self._tools = tool_specs(config.tools)
        self._failed_turns = 0
        self._speculation = Speculation(call, provider, config.settings, self._request_for)
        self._ahead = call.recognize_ahead(TurnAhead(transcriber, self._speculation, live))
        self._taken: ModelStream | None = None
        """The speculative reply the current turn took (its first round's stream)."""

    def _request_for(self, user_text: str) -> ChatRequest:
        settings = self.config.settings
        return self.conversation.request(
            self._tools,
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
            user=user_text,
        )

    async def run(self) -> LlmOutcome:
        try:
            return await self._run()
        finally:
            self._ahead.stop()
            await self._speculation.close()
            if self._taken is not None:
                await self._taken.cancel()

    async def _run(self) -> LlmOutcome:
        if self.config.greeting:
            said = await self.call.say(self.config.greeting, barge_in=self.config.barge_in)
            self.conversation.commit_assistant(
                said.text, said.heard_text, interrupted=said.interrupted
            )
        silent = 0
        turns = 0
        while True:
            item = await self._next_turn_input()
            if item is None:
                silent += 1
                if silent > self.config.max_no_input:
                    return await self._hangup(self.config.goodbye_text)
                await self.call.say(self.config.reprompt_text, barge_in=self.config.barge_in)
                continue
            if isinstance(item, DtmfInput):
                text = f"(The caller pressed {item.digit} on the keypad.)"
                self._speculation.drop("keys")
                caller_done_ms = item.at_ms
            else:
                caller_done_ms = item.voice_end_ms
                text = await self._transcribe(item)
                if self._failed_turns >= self.config.settings.max_failed_turns:
                    return await self._hangup(self.config.failure_goodbye_text)
                if not text:
                    continue  # noise the VAD took for speech (or an STT failure): keep listening
            silent = 0
            turns += 1
            if self.config.max_turns is not None and turns > self.config.max_turns:
                self.call.record_event("llm_max_turns", turns=self.config.max_turns)
                return await self._hangup(self.config.goodbye_text)
            self.conversation.add_user(text)
            outcome = await self._answer(caller_done_ms)
            if outcome is not None:
                return outcome
            if self._failed_turns >= self.config.settings.max_failed_turns:
                return await self._hangup(self.config.failure_goodbye_text)

    async def _next_turn_input(self) -> DtmfInput | SpeechInput | None:
        """The caller's next key or utterance, or None when the no-input deadline passed.

        The deadline is set once per wait on the call clock: noise (an abandoned onset, an
        utterance that transcribed to nothing) does not restart it. While the caller is talking
        it is pushed out, so the reprompt never talks over a long sentence.
        """
        clock = self.call.clock
        timeout = self.config.no_input_timeout_ms
        deadline = quiet_deadline = clock.now_ms() + timeout
        self._speculation.enabled = True
        try:
            while True:
                item = await self.call.next_input(max(0.0, deadline - clock.now_ms()))
                if item is None or isinstance(item, DtmfInput | SpeechInput):
                    return item
                if isinstance(item, SpeechStarted):
                    deadline = max(deadline, clock.now_ms() + timeout)
                elif isinstance(item, SpeechAbandoned):  # noise: back to the original deadline
                    deadline = quiet_deadline
        finally:
            self._speculation.enabled = False

    async def _transcribe(self, speech: SpeechInput) -> str:
        clock = self.call.clock
        delivered_ms = clock.now_ms()
        endpoint_ms = delivered_ms - speech.voice_end_ms
        pending = self._ahead.result(speech)
        ready = pending.done()
        try:
            result = await pending
        except Exception as exc:  # a recogniser outage must not silence the call
            self._speculation.drop("stt_failed")
            self.call.record_event("llm_stt_error", error=f"{type(exc).__name__}: {exc}")
            self._failed_turns += 1  # an STT outage that never ends must end the call politely
            await self._fallback()
            return ""
        self.call.record_event(
            "llm_caller_turn",
            text_chars=len(result.text),
            caller_text=result.text.strip(),  # in the call's record only, never in its log
            engine=result.engine,
            endpointing_ms=round(endpoint_ms),
            stt_ms=round(result.elapsed_ms),
            stt_wait_ms=round(clock.now_ms() - delivered_ms),
            ahead=ready,
        )
        self._taken = self._speculation.take(result)
        return result.text.strip()

    async def _answer(self, caller_done_ms: float) -> LlmOutcome | None:
        """Model rounds until the model answers without tools (or a tool ends the dialog).

        ``caller_done_ms`` (call clock): when the caller stopped talking (or pressed the key).
        Each round is told how long the caller has been waiting in silence: the first since then
        (endpointing and speech-to-text took that long), a tool round since the last thing the
        caller heard (the previous round's words or filler), else still since the caller's turn:
        a tool's own latency is silence on the line too, so it brings the filler forward.
        """
        settings = self.config.settings
        clock = self.call.clock
        silent_since_ms = caller_done_ms
        for _ in range(settings.max_tool_rounds):
            request = self.conversation.request(
                self._tools, max_tokens=settings.max_tokens, temperature=settings.temperature
            )
            started = time.monotonic()
            stream, self._taken = self._taken, None  # the speculative reply: first round only
            waited_ms = max(0.0, clock.now_ms() - silent_since_ms)
            result = await run_round(
                self.call,
                self.provider,
                request,
                settings,
                barge_in=self.config.barge_in,
                waited_ms=waited_ms,
                stream=stream,
            )
            if _caller_heard(result):
                silent_since_ms = clock.now_ms()
            self._remember(result)
            self.call.record_event(
                "llm_round",
                status=result.status,
                first_token_ms=_ms(result.first_token_ms),
                filler=result.filler_said,
                fillers=result.fillers,
                waited_ms=round(waited_ms),
                tools=[c.name for c in result.tool_calls],
                elapsed_ms=round((time.monotonic() - started) * 1000),
            )
            if result.status != "answered":
                self._failed_turns += result.status == "failed"
                return None
            self._failed_turns = 0
            if not result.tool_calls:
                return None
            outcome = await self._run_tools(result)
            if outcome is not None:
                return outcome
        await self._fallback()  # the model kept calling tools: stop the loop, keep the call
        return None

    def _remember(self, result: RoundResult) -> None:
        spoken = result.spoken
        if spoken is not None or result.tool_calls:
            self.conversation.commit_assistant(
                spoken.text if spoken else "",
                spoken.heard_text if spoken else "",
                interrupted=result.status == "interrupted",
                tool_calls=result.tool_calls,
            )
        if result.fallback is not None:  # heard by the caller, so the model must know it
            fb = result.fallback
            self.conversation.commit_assistant(fb.text, fb.heard_text, interrupted=fb.interrupted)

    async def _run_tools(self, result: RoundResult) -> LlmOutcome | None:
        spoke = bool(result.spoken and result.spoken.text.strip())
        for n, call in enumerate(result.tool_calls):
            self.call.record_event("llm_tool", name=call.name)
            outcome: LlmOutcome | ToolResult
            if call.name == TRANSFER_CALL:
                checked = check_transfer(self.config.tools, call)
                if isinstance(checked, str):
                    self.conversation.add_tool_result(call, '{"status": "transferring"}')
                    await self.call.transfer(checked)
                    return LlmOutcome("transfer", number=checked)
                outcome = checked
            elif call.name == END_CALL and self.config.tools.allow_end_call:
                self.conversation.add_tool_result(call, '{"status": "ending"}')
                return await self._hangup(None if spoke else self.config.goodbye_text)
            elif call.name == GOTO_STEP:
                checked = check_goto(self.config.tools, call)
                if isinstance(checked, str):
                    self.conversation.add_tool_result(call, f'{{"status": "at step {checked}"}}')
                    # The conversation resumes if the caller comes back: every call needs a result.
                    for skipped in result.tool_calls[n + 1 :]:
                        error = error_result(f"skipped: the call went to step {checked} first")
                        self.conversation.add_tool_result(skipped, error.content, is_error=True)
                    return LlmOutcome("goto", step_id=checked)
                outcome = checked
            elif (tool := find_http_tool(self.config.tools.http_tools, call.name)) is not None:
                outcome = await run_http_tool(tool, call.arguments)
            else:
                outcome = error_result(f"there is no tool named {call.name!r}")
            self.conversation.add_tool_result(call, outcome.content, is_error=outcome.is_error)
        return None

    async def _fallback(self) -> None:
        said = await self.call.say(
            self.config.settings.fallback_text, barge_in=self.config.barge_in
        )
        self.conversation.commit_assistant(said.text, said.heard_text, interrupted=said.interrupted)

    async def _hangup(self, goodbye: str | None) -> LlmOutcome:
        if goodbye:
            await self.call.say(goodbye, barge_in=_NOTICE)
        await self.call.hangup()
        return LlmOutcome("hangup")


def _caller_heard(result: RoundResult) -> bool:
    """Whether the round said anything (its answer, a filler, the fallback line)."""
    spoke = result.spoken is not None and bool(result.spoken.text.strip())
    return spoke or result.fillers > 0 or result.fallback is not None


def _ms(value: float | None) -> int | None:
    return None if value is None else round(value)


async def run_llm_dialog(
    call: CallControl,
    provider: LLMProvider,
    transcriber: Transcriber,
    config: LlmDialogConfig,
    *,
    system_prompt: str,
    conversation: Conversation | None = None,
    live: LiveTranscriber | None = None,
) -> LlmOutcome:
    """Hand the call to the model until it transfers, hangs up or returns to the flow."""
    dialog = LlmDialog(
        call, provider, transcriber, config, conversation or Conversation(system_prompt), live
    )
    return await dialog.run()
