"""The gather step: a prompt, then digits or a spoken choice, with escalating reprompts.

Timing is call time (``CallControl.next_input``), so a simulated caller at any speed gets the
same timeouts. Callers who know the menu answer early: keys typed before the gather (type-ahead)
answer it and its prompt is not spoken, and digits or words during the prompt count; speech from
before the gather, or over a prompt it could not interrupt, is dropped. A finish
key pressed after an entry already reached its maximum length belongs to that entry, not to
whatever the flow asks next.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ivr_bridge.call.control import BargeInPolicy, CallControl
from ivr_bridge.call.inputs import DtmfInput, SpeechAbandoned, SpeechInput, SpeechStarted
from ivr_bridge.dialog.flow_model import DigitRules, GatherSpec
from ivr_bridge.dialog.services import FlowServices, GrammarChoice, RecognizerUnavailable
from ivr_bridge.dialog.templates import render
from ivr_bridge.recognition.models import GrammarError

SAMPLE_RATE = 8000


@dataclass(frozen=True, slots=True)
class Heard:
    """What one listening turn produced."""

    outcome: Literal["match", "no_input", "no_match"]
    value: str | None = None
    """Option id (menu) or digits (entry)."""
    mode: Literal["dtmf", "speech"] | None = None
    text: str = ""
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class GatherResult:
    value: str | None
    """None after ``max_attempts`` failures."""
    goto: str | None
    """Where the chosen option (or the failure handler) sends the flow."""
    last: dict[str, Any]


async def run_gather(
    spec: GatherSpec,
    label: str,
    call: CallControl,
    services: FlowServices,
    scope: Mapping[str, Any],
) -> GatherResult:
    policy = BargeInPolicy(spec.barge_in)
    prompt = render(spec.prompt, scope) if spec.prompt is not None else None
    counts = {"no_input": 0, "no_match": 0}
    call.discard_inputs(keys=False)  # old speech does not answer this menu; typed-ahead keys do
    say_next = prompt
    for attempt in range(1, spec.max_attempts + 1):
        if say_next:
            await call.say(say_next, barge_in=policy)
            if spec.barge_in == "none":  # talking over legal text is no answer either
                call.discard_inputs(keys=False)
        heard = await listen(spec, label, call, services)
        call.record_event(
            "gather",
            step=label,
            attempt=attempt,
            outcome=heard.outcome,
            value=heard.value,
            mode=heard.mode,
            confidence=heard.confidence,
        )
        last = {
            "step": label,
            "outcome": heard.outcome,
            "mode": heard.mode,
            "text": heard.text,
            "confidence": heard.confidence,
            "value": heard.value,
        }
        if heard.outcome == "match":
            option = spec.options.get(heard.value or "")
            return GatherResult(heard.value, option.goto if option else None, last)
        counts[heard.outcome] += 1
        if attempt == spec.max_attempts:
            break
        handlers = spec.no_input if heard.outcome == "no_input" else spec.no_match
        n = counts[heard.outcome]
        say_next = render(handlers[min(n, len(handlers)) - 1], scope) if handlers else prompt
    call.record_event("gather_failed", step=label, **counts)
    return GatherResult(None, spec.on_failure, last)


async def listen(spec: GatherSpec, label: str, call: CallControl, services: FlowServices) -> Heard:
    """One turn: wait for digits or an utterance and classify it.

    Deadlines are on the call clock and set only by what the turn acts on, so inputs it ignores
    (speech during a digits-only entry) never restart the no-input timer.
    """
    rules = spec.digit_rules
    speech = spec.listens_for_speech
    digits = ""
    now = call.clock.now_ms
    deadline = now() + spec.timeout_ms
    quiet_deadline = deadline  # where an abandoned onset (a cough) sends the wait back to
    while True:
        item = await call.next_input(max(0.0, deadline - now()))
        if item is None:
            if digits:
                break  # inter-digit timeout ends the entry
            return Heard("no_input")
        if isinstance(item, DtmfInput) and rules is not None:
            if rules.finish_on is not None and item.digit == rules.finish_on:
                break
            digits += item.digit
            if len(digits) >= rules.max and not spec.options and rules.finish_on is not None:
                # A full-length entry is over; the finish key pressed out of habit is its own.
                call.swallow_key(rules.finish_on, rules.inter_digit_timeout_ms)
                break
            if len(digits) >= rules.max or _unique_menu_digits(spec, digits):
                break
            deadline = quiet_deadline = now() + rules.inter_digit_timeout_ms
        elif isinstance(item, SpeechStarted) and speech and not digits:
            deadline = now() + spec.max_speech_ms  # talking: wait for the utterance's end
        elif isinstance(item, SpeechAbandoned) and speech and not digits:
            deadline = quiet_deadline  # it was noise: no utterance is coming
        elif isinstance(item, SpeechInput) and speech and not digits:
            return await recognize_choice(spec, label, item, call, services)
    return _classify_digits(spec, rules, digits)


def _unique_menu_digits(spec: GatherSpec, digits: str) -> bool:
    """A menu answer that no longer option could extend needs no finish key."""
    keys = [o.digits for o in spec.options.values() if o.digits]
    return digits in keys and not any(k != digits and k.startswith(digits) for k in keys)


def _classify_digits(spec: GatherSpec, rules: DigitRules | None, digits: str) -> Heard:
    if not digits:
        return Heard("no_match", mode="dtmf")  # the finish key alone
    if rules is not None and len(digits) < rules.min:
        return Heard("no_match", mode="dtmf", text=digits)
    if spec.options:
        chosen = next((name for name, o in spec.options.items() if o.digits == digits), None)
        if chosen is None:
            return Heard("no_match", mode="dtmf", text=digits)
        return Heard("match", chosen, "dtmf", digits, 1.0)
    return Heard("match", digits, "dtmf", digits, 1.0)


async def recognize_choice(
    spec: GatherSpec, label: str, item: SpeechInput, call: CallControl, services: FlowServices
) -> Heard:
    """Match an utterance against the menu's phrases with the grammar recogniser."""
    choices = [
        GrammarChoice(name, tuple(option.phrases))
        for name, option in spec.options.items()
        if option.phrases
    ]
    audio_ms = round(item.end_ms - item.start_ms)
    try:
        result = await services.grammar().recognize(item.pcm16, SAMPLE_RATE, choices)
    except (RecognizerUnavailable, GrammarError) as exc:
        call.record_event("recognition_unavailable", step=label, error=str(exc))
        return Heard("no_match", mode="speech")
    # Trust the recogniser's verdict: a rejected decode whose text merely contains an option's
    # words is the out-of-grammar case the grammar's confidence check exists to catch.
    choice = result.choice if result.choice in spec.options else None
    confident = result.confidence >= spec.min_confidence
    call.record_event(
        "recognition",
        step=label,
        text=result.text,
        choice=choice,
        confidence=round(result.confidence, 3),
        engine=result.engine,
        elapsed_ms=round(result.elapsed_ms),
        audio_ms=audio_ms,
        accepted=bool(choice and confident),
    )
    if choice is None or not confident:
        return Heard("no_match", mode="speech", text=result.text, confidence=result.confidence)
    return Heard("match", choice, "speech", result.text, result.confidence)
