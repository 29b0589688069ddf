"""Asking back an unsure spoken choice that cannot be undone ("Did you say cancel?").

A misheard "billing" costs the caller one more menu; a misheard "goodbye" or "cancel my
appointment" hangs up or cancels. So an option marked ``confirm: true`` that was *spoken* with a
confidence under the gather's ``confirm_below`` is asked back before it is taken. Keys are never
asked back: a key press is unambiguous. The answer is a tiny yes/no menu of its own, by voice
through the same recogniser or by key (1 yes, 2 no), with the menu's timeouts and barge-in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ivr_bridge.call.control import BargeInPolicy, CallControl
from ivr_bridge.dialog.flow_model import DEFAULT_CONFIRM_PROMPT, GatherOption, GatherSpec
from ivr_bridge.dialog.listen import Heard, listen
from ivr_bridge.dialog.services import FlowServices
from ivr_bridge.dialog.templates import render
from ivr_bridge.recognition.grammar import yes_no_choices

_YES_NO = {choice.id: list(choice.phrases) for choice in yes_no_choices()}


def needs_confirmation(spec: GatherSpec, option: GatherOption, heard: Heard) -> bool:
    """A spoken match of a ``confirm`` option below ``confirm_below``; never a key press."""
    return (
        option.confirm
        and heard.mode == "speech"
        and heard.confidence is not None
        and heard.confidence < spec.confirm_below
    )


def confirmation_spec(spec: GatherSpec) -> GatherSpec:
    """The yes/no question, listening the way the menu it confirms does."""
    return GatherSpec(
        barge_in=spec.barge_in,
        options={
            "yes": GatherOption(digits="1", phrases=_YES_NO["yes"]),
            "no": GatherOption(digits="2", phrases=_YES_NO["no"]),
        },
        timeout_ms=spec.timeout_ms,
        max_speech_ms=spec.max_speech_ms,
        min_confidence=spec.min_confidence,
        max_attempts=1,
        sensitive=spec.sensitive,
    )


async def confirm_choice(
    spec: GatherSpec,
    name: str,
    option: GatherOption,
    label: str,
    call: CallControl,
    services: FlowServices,
    scope: Mapping[str, Any],
) -> Heard:
    """Ask whether ``name`` was meant: a match (``value`` "yes") when it was.

    A "no" or an unclear answer comes back as a no-match whose reason says so, silence as a
    no-input, so the gather's event and debug line read like every other rejected answer."""
    phrase = option.phrases[0] if option.phrases else name
    question = render(option.confirm_prompt or DEFAULT_CONFIRM_PROMPT, {**scope, "phrase": phrase})
    call.discard_inputs(keys=False)  # what was said before the question does not answer it
    await call.say(question, barge_in=BargeInPolicy(spec.barge_in))
    if spec.barge_in == "none":
        call.discard_inputs(keys=False)
    answer = await listen(confirmation_spec(spec), label, call, services)
    call.record_event(
        "gather_confirm",
        step=label,
        option=name,
        outcome=answer.outcome,
        answer=answer.value,
        mode=answer.mode,
        confidence=answer.confidence,
    )
    if answer.outcome == "match" and answer.value == "no":
        return Heard(
            "no_match",
            None,
            answer.mode,
            answer.text,
            answer.confidence,
            reason=f"the caller said no to {name!r} when asked back",
        )
    if answer.outcome == "no_match":
        reason = f"asked back about {name!r}, the answer was neither yes nor no: {answer.reason}"
        return Heard("no_match", None, answer.mode, answer.text, answer.confidence, reason)
    return answer
