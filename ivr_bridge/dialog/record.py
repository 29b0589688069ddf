"""The record step: capture what the caller says (a message, a reason for calling).

Utterances (cut by the conductor's VAD) are collected until the caller stays quiet for
``end_silence_ms``, presses the finish key, or ``max_ms`` of call time passed; the audio is then
transcribed (faster-whisper when installed) and the text and confidence go in the call's events,
which are the call's transcript.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ivr_bridge.call.control import BargeInPolicy, CallControl
from ivr_bridge.call.inputs import DtmfInput, SpeechAbandoned, SpeechInput, SpeechStarted
from ivr_bridge.dialog.flow_model import RecordSpec
from ivr_bridge.dialog.services import FlowServices, RecognizerUnavailable
from ivr_bridge.dialog.templates import render

SAMPLE_RATE = 8000


@dataclass(frozen=True, slots=True)
class Recorded:
    text: str
    audio_ms: int
    confidence: float | None


async def run_record(
    spec: RecordSpec,
    label: str,
    call: CallControl,
    services: FlowServices,
    scope: Mapping[str, Any],
) -> Recorded:
    call.discard_inputs()
    if spec.prompt is not None:
        await call.say(render(spec.prompt, scope), barge_in=BargeInPolicy(spec.barge_in))
        if spec.barge_in == "none":
            call.discard_inputs()
    pieces = await _capture(spec, call)
    audio = b"".join(pieces)
    audio_ms = len(audio) * 1000 // (2 * SAMPLE_RATE)
    text, confidence, engine, elapsed = "", None, None, None
    if audio and spec.transcribe:
        try:
            result = await services.transcriber().transcribe(audio, SAMPLE_RATE)
        except RecognizerUnavailable as exc:
            call.record_event("transcription_unavailable", step=label, error=str(exc))
        else:
            text, confidence = result.text.strip(), result.confidence
            engine, elapsed = result.engine, round(result.elapsed_ms)
    call.record_event(
        "recording",
        step=label,
        utterances=len(pieces),
        audio_ms=audio_ms,
        text=text,
        confidence=None if confidence is None else round(confidence, 3),
        engine=engine,
        elapsed_ms=elapsed,
    )
    return Recorded(text, audio_ms, confidence)


async def _capture(spec: RecordSpec, call: CallControl) -> list[bytes]:
    """Utterances until quiet, the finish key or ``max_ms``; deadlines on the call clock."""
    pieces: list[bytes] = []
    now = call.clock.now_ms
    deadline = now() + spec.max_ms
    quiet_deadline = now() + spec.timeout_ms  # no input yet / end of the message
    wait_until = quiet_deadline
    while True:
        left = min(wait_until, deadline) - now()
        if left <= 0:
            return pieces
        item = await call.next_input(left)
        if item is None:
            return pieces
        if isinstance(item, DtmfInput) and item.digit == spec.finish_on:
            return pieces
        if isinstance(item, SpeechStarted):
            wait_until = deadline  # talking: wait for the end of the utterance (max_ms bounds it)
        elif isinstance(item, SpeechAbandoned):
            wait_until = quiet_deadline  # it was noise (a cough): no utterance is coming
        elif isinstance(item, SpeechInput):
            pieces.append(item.pcm16)
            quiet_deadline = wait_until = now() + spec.end_silence_ms
