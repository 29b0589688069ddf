"""One listening turn of a gather: wait for keys or an utterance, classify it, say why not.

Timing is call time (``CallControl.next_input``), so a simulated caller at any speed gets the
same timeouts. A rejected answer carries its reason in words ("no menu option's words in it",
"confidence 0.41 is below this gather's min_confidence 0.60"), for the gather's event and a
debug line, so a flow author tuning a menu sees why callers fail without reading decoder
scores. Keys pressed never appear in a reason (log lines show only how many were pressed, see
``call.event_log``), nor what was said in a ``sensitive`` gather.

A turn that listens for speech recognises ahead (``call.lookahead``): the menu is decoded at
each pause of the caller's, so the answer is known when the silence starts, and a pause whose
words already name an option confidently (``MenuAhead.verdict``) ends the utterance after the
short wait instead of the full one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ivr_bridge.call.control import CallControl
from ivr_bridge.call.inputs import DtmfInput, SpeechAbandoned, SpeechInput, SpeechStarted
from ivr_bridge.call.lookahead import Ahead, AheadHandle, Verdict
from ivr_bridge.dialog.flow_model import DigitRules, GatherSpec
from ivr_bridge.dialog.menu import command_name
from ivr_bridge.dialog.services import FlowServices, GrammarChoice, RecognizerUnavailable
from ivr_bridge.recognition.models import GrammarError, Recognition

SAMPLE_RATE = 8000
Outcome = Literal["match", "no_input", "no_match"]


@dataclass(frozen=True, slots=True)
class Heard:
    """What one listening turn produced."""

    outcome: Outcome
    value: str | None = None
    """Option id (menu) or digits (entry)."""
    mode: Literal["dtmf", "speech"] | None = None
    text: str = ""
    confidence: float | None = None
    reason: str = ""
    """Why a no-match was not taken, in words (never the keys pressed, nor what was said in a
    ``sensitive`` gather); empty for a match or a no-input."""


class MenuAhead(Ahead[Recognition]):
    """The menu's recogniser at the caller's pauses; a confident option answers the turn."""

    def __init__(self, spec: GatherSpec, services: FlowServices) -> None:
        self._spec = spec
        self._services = services
        self.choices = [
            GrammarChoice(name, tuple(option.phrases))
            for name, option in spec.options.items()
            if option.phrases
        ]

    async def recognize(self, speech: SpeechInput) -> Recognition:
        grammar = self._services.grammar()
        return await grammar.recognize(speech.pcm16, SAMPLE_RATE, self.choices)

    def verdict(self, result: Recognition) -> Verdict | None:
        confident = result.confidence >= max(self._spec.min_confidence, 1e-9)
        return "answered" if result.choice in self._spec.options and confident else None


async def listen(spec: GatherSpec, label: str, call: CallControl, services: FlowServices) -> Heard:
    """One turn: wait for digits or an utterance and classify it.

    Deadlines are on the call clock and set only by what the turn acts on, so inputs it ignores
    (speech during a digits-only entry) never restart the no-input timer.
    """
    if not spec.listens_for_speech:
        return await _listen(spec, call, None)
    ahead = call.recognize_ahead(MenuAhead(spec, services))
    try:
        return await _listen(spec, call, ahead, label)
    finally:
        ahead.stop()


async def _listen(
    spec: GatherSpec,
    call: CallControl,
    ahead: AheadHandle[Recognition] | None,
    label: str = "",
) -> Heard:
    rules = spec.digit_rules
    speech = ahead is not None
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
        elif isinstance(item, SpeechInput) and ahead is not None and not digits:
            return await recognize_choice(spec, label, item, call, ahead)
    return _classify_digits(spec, rules, digits)


def _unique_menu_digits(spec: GatherSpec, digits: str) -> bool:
    """A menu answer that no longer option could extend needs no finish key."""
    keys = [o.digits for o in spec.options.values() if o.digits]
    return digits in keys and not any(k != digits and k.startswith(digits) for k in keys)


def _classify_digits(spec: GatherSpec, rules: DigitRules | None, digits: str) -> Heard:
    if not digits:
        finish = rules.finish_on if rules is not None else None
        return Heard("no_match", mode="dtmf", reason=f"only the finish key {finish!r} was pressed")
    if rules is not None and len(digits) < rules.min:
        reason = f"{_keys(len(digits))} pressed, shorter than min_digits {rules.min}"
        return Heard("no_match", mode="dtmf", text=digits, reason=reason)
    if spec.options:
        chosen = next((name for name, o in spec.options.items() if o.digits == digits), None)
        if chosen is None:
            menu_keys = ", ".join(o.digits for o in spec.options.values() if o.digits)
            reason = f"{_keys(len(digits))} pressed, matching no option's keys ({menu_keys})"
            return Heard("no_match", mode="dtmf", text=digits, reason=reason)
        return Heard("match", chosen, "dtmf", digits, 1.0)
    return Heard("match", digits, "dtmf", digits, 1.0)


def _keys(n: int) -> str:
    return "1 key" if n == 1 else f"{n} keys"


def _option_label(value: str) -> str:
    command = command_name(value)
    return f"the command {command!r}" if command else repr(value)


def _speech_reason(spec: GatherSpec, text: str, confidence: float, why: str) -> str:
    heard = "speech" if spec.sensitive else f'"{text}"'
    return f"heard {heard} (confidence {confidence:.2f}): {why}"


async def recognize_choice(
    spec: GatherSpec,
    label: str,
    item: SpeechInput,
    call: CallControl,
    ahead: AheadHandle[Recognition],
) -> Heard:
    """Match an utterance against the menu's phrases with the grammar recogniser (its result
    from the caller's last pause when that pause heard all of it)."""
    audio_ms = round(item.end_ms - item.start_ms)
    asked_at = call.clock.now_ms()
    pending = ahead.result(item)
    ready = pending.done()
    try:
        result = await pending
    except (RecognizerUnavailable, GrammarError) as exc:
        call.record_event("recognition_unavailable", step=label, error=str(exc))
        return Heard("no_match", mode="speech", reason=f"no recogniser to hear it: {exc}")
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
        wait_ms=round(call.clock.now_ms() - asked_at),
        ready=ready,
        audio_ms=audio_ms,
        accepted=bool(choice and confident),
    )
    if choice is None or not confident:
        if result.choice is None:
            why = result.reason or "no menu option's words in it"
        elif choice is None:
            why = f"matched {result.choice!r}, which is not an option of this menu"
        else:
            why = (
                f"matched {_option_label(choice)} but confidence {result.confidence:.2f} is "
                f"below this gather's min_confidence {spec.min_confidence:.2f}"
            )
        reason = _speech_reason(spec, result.text, result.confidence, why)
        return Heard(
            "no_match", mode="speech", text=result.text, confidence=result.confidence, reason=reason
        )
    return Heard("match", choice, "speech", result.text, result.confidence)
