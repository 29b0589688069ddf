"""Plays a caller script on a live stream: speaks, presses, waits for the bot, barges in, hangs up.

All audio is prepared before the call starts (synthesis takes real time, which at ``speed 20``
would be seconds of call time), so the timeline depends only on the server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ivr_bridge.audio.codec import audioop  # the one guarded import (3.11-3.13)
from ivr_bridge.errors import SimulationError
from ivr_bridge.llm.types import LLMError
from ivr_bridge.sim.scenario.llm_caller import LLMCaller
from ivr_bridge.sim.scenario.matching import best_match
from ivr_bridge.sim.scenario.recording import CallRecorder
from ivr_bridge.sim.scenario.script import (
    BargeInStep,
    CallerScript,
    Converse,
    ConverseStep,
    HangupStep,
    IfBotSaid,
    IfBotSaidStep,
    PlayStep,
    PressStep,
    SayStep,
    SilenceStep,
    Step,
    WaitForBotStep,
    all_steps,
)
from ivr_bridge.sim.scenario.voice import CallerSpeech, load_wav_as_ulaw
from ivr_bridge.sim.twilio.protocol import FRAME_MS
from ivr_bridge.sim.twilio.session import CallEnded, CallerLine

Transcriber = Callable[[bytes, int], Awaitable[str]]

QUIET_REAL_FLOOR_MS = 200.0
"""Real time the bot's silence must last before ``wait_for_bot`` ends (above real time)."""

PreparedAudio = dict[tuple[str, str], bytes]
"""("say", voice + text) or ("play", path) → µ-law."""


def quiet_for(quiet_ms: float, speed: float) -> float:
    """The call time ``wait_for_bot`` waits for quiet at this speed: ``quiet_ms``, raised
    towards ``QUIET_REAL_FLOOR_MS`` of real time, but never past twice ``quiet_ms`` (a caller
    that waits much longer would run into the bot's own no-input timeouts)."""
    if speed <= 1:
        return quiet_ms
    return max(quiet_ms, min(QUIET_REAL_FLOOR_MS * speed, 2 * quiet_ms))


def _louder(ulaw: bytes, gain_db: float) -> bytes:
    """The persona's loudness (clipped at full scale, as a hot microphone would be)."""
    if not gain_db:
        return ulaw
    pcm = audioop.mul(audioop.ulaw2lin(ulaw, 2), 2, 10 ** (gain_db / 20))
    return audioop.lin2ulaw(pcm, 2)


def _say_key(text: str, voice: str) -> tuple[str, str]:
    return ("say", f"{voice}\0{text}")


async def prepare_audio(script: CallerScript, speech: CallerSpeech) -> PreparedAudio:
    """Synthesise every ``say`` and load every ``play`` the script needs."""
    prepared: PreparedAudio = {}
    for step in all_steps(script.steps):
        action = step.barge_in if isinstance(step, BargeInStep) else step
        say = getattr(action, "say", None)
        play = getattr(action, "play", None)
        if isinstance(say, str):
            voice = getattr(action, "voice", None) or script.caller.voice
            key = _say_key(say, voice)
            if key not in prepared:
                ulaw = await speech(say, voice, script.caller.rate)
                prepared[key] = _louder(ulaw, script.caller.loudness_db)
        if isinstance(play, str) and ("play", play) not in prepared:
            prepared[("play", play)] = await load_wav_as_ulaw(script.resolve(play))
    return prepared


class ScriptRunner:
    def __init__(
        self,
        session: CallerLine,
        script: CallerScript,
        recorder: CallRecorder,
        audio: PreparedAudio,
        transcriber: Transcriber | None = None,
        speech: CallerSpeech | None = None,
    ) -> None:
        """``speech`` voices what is only known during the call (an LLM caller's lines)."""
        self.session = session
        self.script = script
        self.recorder = recorder
        self.audio = audio
        self.transcriber = transcriber
        self.speech = speech

    async def run(self) -> None:
        """Run every step; a stream that ends early just stops the script."""
        handlers: dict[type, Callable[[Step], Awaitable[None]]] = {
            SayStep: self._say,
            PlayStep: self._play,
            PressStep: self._press,
            SilenceStep: self._silence,
            WaitForBotStep: self._wait_for_bot,
            BargeInStep: self._barge_in,
            HangupStep: self._hangup,
        }
        self._handlers = handlers
        try:
            await self._run_steps(self.script.steps)
        except CallEnded:
            return

    async def _run_steps(self, steps: list[Any]) -> bool:
        """Run ``steps`` in order; True when one hung up (nothing after it runs)."""
        for step in steps:
            if isinstance(step, IfBotSaidStep):
                if await self._run_steps(await self._branch(step.if_bot_said)):
                    return True
                continue
            if isinstance(step, ConverseStep):
                await self._converse(step.converse)
                return True  # the LLM caller ends the call
            await self._handlers[type(step)](step)
            if isinstance(step, HangupStep):
                return True
        return False

    async def _heard_since_last_turn(self) -> str:
        """The bot's words since the caller's last turn (the last utterance if none since),
        transcribed while the line keeps running."""
        if self.transcriber is None:
            raise SimulationError("if_bot_said and converse need a transcriber")
        recorder = self.recorder
        since = max((t.end_ms for t in recorder.turns if t.end_ms is not None), default=0.0)
        heard = [u for u in recorder.utterances if u.start_ms >= since] or recorder.utterances[-1:]
        texts = []
        for u in heard:
            texts.append(
                (await self.transcriber(recorder.heard_pcm16(u.start_ms, u.end_ms), 8000)).strip()
            )
        return " ".join(texts)

    async def _branch(self, branch: IfBotSaid) -> list[Any]:
        """The steps to take: ``then`` when the bot's words since the caller's last turn match
        the phrase, else ``else``."""
        began = self.session.line_ms
        text = await self._heard_since_last_turn()
        match = best_match(branch.phrase, text)
        taken = "then" if match.passes(branch.similarity) else "else"
        self.recorder.event(
            self.session.line_ms,
            "branch",
            # Call time the caller's ears took (the line ran on): a person decides at once, so
            # a long wait is the tester falling behind, not the agent (see the tester's runner).
            decided_in_ms=self.session.line_ms - began,
            phrase=branch.phrase,
            heard=text[:200],
            score=match.score,
            taken=taken,
        )
        return list(branch.then if taken == "then" else branch.otherwise)

    async def _speak(self, kind: str, detail: str, ulaw: bytes, *, barge_in: bool) -> None:
        start, end = await self.session.speak(ulaw)
        turn = self.recorder.begin_turn(kind, detail, start, barge_in=barge_in)
        self.recorder.end_turn(turn, end)

    async def _say(self, step: Step, *, barge_in: bool = False) -> None:
        assert isinstance(step, SayStep)
        voice = step.voice or self.script.caller.voice
        ulaw = self.audio[_say_key(step.say, voice)]
        await self._speak("say", step.say, ulaw, barge_in=barge_in)

    async def _play(self, step: Step, *, barge_in: bool = False) -> None:
        assert isinstance(step, PlayStep)
        await self._speak("play", step.play, self.audio[("play", step.play)], barge_in=barge_in)

    async def _press(self, step: Step, *, barge_in: bool = False) -> None:
        assert isinstance(step, PressStep)
        turn = None
        last = 0.0
        for index, digit in enumerate(step.press):
            if index:
                await self._wait_line(last + step.gap_ms)
            last = await self.session.press(digit)
            if turn is None:
                turn = self.recorder.begin_turn("press", step.press, last, barge_in=barge_in)
        assert turn is not None
        self.recorder.end_turn(turn, last)

    async def _wait_line(self, call_ms: float) -> None:
        await self.session.wait_for(lambda: self.session.line_ms >= call_ms)

    async def _silence(self, step: Step) -> None:
        assert isinstance(step, SilenceStep)
        await self._wait_line(self.session.line_ms + step.silence)

    async def _wait_for_bot(self, step: Step) -> None:
        """Until the bot spoke and then fell quiet: buffer drained, no new audio for quiet_ms
        (and, faster than real time, for ``QUIET_REAL_FLOOR_MS`` of real time too: a bot slowed
        by a busy machine pauses in real time, which at 20x is twenty times as much call time,
        and must not be taken for a bot that finished)."""
        assert isinstance(step, WaitForBotStep)
        options = step.wait_for_bot
        session = self.session
        quiet_ms = quiet_for(options.quiet_ms, session.clock.speed)
        frames_before = session.bot_frames_heard
        already_speaking = session.buffer.playing or session.buffer.buffered_bytes > 0

        def finished() -> bool:
            spoke = already_speaking or session.bot_frames_heard > frames_before
            last = session.last_bot_frame_end_ms
            return (
                spoke
                and last is not None
                and session.buffer.buffered_bytes == 0
                and session.line_ms - last >= quiet_ms
            )

        if not await session.wait_for(finished, timeout_ms=options.timeout_ms):
            self.recorder.event(session.line_ms, "wait_timeout", step="wait_for_bot")

    async def _barge_in(self, step: Step) -> None:
        """Start talking ``after_ms`` into the bot's current (or next) utterance."""
        assert isinstance(step, BargeInStep)
        options = step.barge_in
        session = self.session
        recorder = self.recorder
        audible = recorder.audible_utterance
        if audible is not None:
            onset = audible.start_ms
        else:
            # Wait for the bot's next speech; its first voiced frame is the onset.
            since = recorder.line_end_ms
            heard = await session.wait_for(
                lambda: (recorder.last_voiced_end_ms or 0.0) > since, timeout_ms=options.timeout_ms
            )
            if not heard:
                recorder.event(session.line_ms, "wait_timeout", step="barge_in")
                return
            assert recorder.last_voiced_end_ms is not None
            onset = recorder.last_voiced_end_ms - FRAME_MS
        await session.wait_for(lambda: session.line_ms >= onset + options.after_ms)
        self.recorder.event(
            session.line_ms,
            "barge_in",
            into_utterance_ms=session.line_ms - onset,
            bot_audible=session.buffer.playing,
        )
        if options.say is not None:
            await self._say(SayStep(say=options.say, voice=options.voice), barge_in=True)
        elif options.play is not None:
            await self._play(PlayStep(play=options.play), barge_in=True)
        elif options.press is not None:
            await self._press(PressStep(press=options.press), barge_in=True)

    async def _converse(self, options: Converse) -> None:
        """Turns of an LLM caller: hear the bot out, ask the model, say / press / hang up."""
        caller = LLMCaller(options)
        session = self.session
        if session.clock.speed != 1:
            reason = "an LLM caller at speed > 1: its thinking time is multiplied on the line"
            self.recorder.event(session.line_ms, "warning", reason=reason)
        try:
            for _ in range(options.max_turns):
                await self._wait_for_bot(WaitForBotStep(wait_for_bot=options.wait_for_bot))
                heard = await self._heard_since_last_turn()
                try:
                    move = await caller.next_move(heard)
                except LLMError as exc:  # the caller hangs up; the result shows why
                    why = caller.explain(exc)[:300]
                    self.recorder.event(session.line_ms, "llm_error", error=why)
                    break
                self.recorder.event(
                    session.line_ms,
                    "llm_turn",
                    heard=heard[:200],
                    said=move.say,
                    keys=move.keys,
                    hang_up=move.hang_up,
                )
                if move.say:
                    await self._speak("say", move.say, await self._voiced(move.say), barge_in=False)
                if move.keys:
                    await self._press(PressStep(press=move.keys))
                if move.hang_up:
                    break
            else:
                self.recorder.event(session.line_ms, "llm_gave_up", turns=options.max_turns)
        finally:
            await caller.close()
        await session.hangup("caller")

    async def _voiced(self, text: str) -> bytes:
        voice = self.script.caller.voice
        key = _say_key(text, voice)
        if key not in self.audio:
            if self.speech is None:
                raise SimulationError("an LLM caller needs a voice (pass speech=)")
            ulaw = await self.speech(text, voice, self.script.caller.rate)
            self.audio[key] = _louder(ulaw, self.script.caller.loudness_db)
        return self.audio[key]

    async def _hangup(self, step: Step) -> None:
        await self.session.hangup("caller")
