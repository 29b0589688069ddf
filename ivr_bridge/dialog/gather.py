"""The gather step: a prompt, then digits or a spoken choice, with escalating reprompts.

Timing is call time (``CallControl.next_input``), so a simulated caller at any speed gets the
same timeouts. Callers who know the menu answer early: keys typed before the gather (type-ahead)
answer it and its prompt is not spoken, and digits or words during the prompt count; speech from
before the gather, or over a prompt it could not interrupt, is dropped. A finish
key pressed after an entry already reached its maximum length belongs to that entry, not to
whatever the flow asks next.

Besides its own options a menu understands the flow's ``commands`` (``menu.py``): a ``goto``
command leaves the gather, ``repeat``/``help`` say the prompt again without costing the caller
an attempt. A spoken, unsure match of a ``confirm: true`` option (hang up, cancel) is asked back
first (``confirm.py``), since acting on a misheard "cancel" cannot be undone. One turn's
listening lives in ``listen.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import structlog

from ivr_bridge.call.control import BargeInPolicy, CallControl
from ivr_bridge.dialog.commands import FlowCommand
from ivr_bridge.dialog.confirm import confirm_choice, needs_confirmation
from ivr_bridge.dialog.flow_model import GatherSpec
from ivr_bridge.dialog.listen import Heard, listen
from ivr_bridge.dialog.menu import command_name, with_commands
from ivr_bridge.dialog.services import FlowServices
from ivr_bridge.dialog.templates import render

log = structlog.get_logger(__name__)

MAX_COMMAND_TURNS = 5
"""``repeat``/``help`` answers one gather takes before they count as no-matches (a line whose
noise keeps decoding as "repeat" must still reach the failure branch)."""


@dataclass(frozen=True, slots=True)
class GatherResult:
    value: str | None
    """None after ``max_attempts`` failures, or when a flow command answered."""
    goto: str | None
    """Where the chosen option (or command, or the failure handler) sends the flow."""
    last: dict[str, Any]
    command: str | None = None
    """The flow command that answered (its ``goto`` is ``goto``)."""


async def run_gather(
    spec: GatherSpec,
    label: str,
    call: CallControl,
    services: FlowServices,
    scope: Mapping[str, Any],
    commands: Mapping[str, FlowCommand] | None = None,
) -> GatherResult:
    commands = commands or {}
    menu = with_commands(spec, commands)
    policy = BargeInPolicy(spec.barge_in)
    prompt = render(spec.prompt, scope) if spec.prompt is not None else None
    counts = {"no_input": 0, "no_match": 0}
    call.discard_inputs(keys=False)  # old speech does not answer this menu; typed-ahead keys do
    say_next: list[str] = [prompt] if prompt else []
    turn = command_turns = 0
    last: dict[str, Any] = {}
    while counts["no_input"] + counts["no_match"] < spec.max_attempts:
        turn += 1
        for text in say_next:
            await call.say(text, barge_in=policy)
        if say_next and spec.barge_in == "none":  # talking over legal text is no answer either
            call.discard_inputs(keys=False)
        heard = await listen(menu, label, call, services)
        name = command_name(heard.value) if heard.outcome == "match" else None
        command = commands.get(name) if name else None
        option = spec.options.get(heard.value or "") if heard.outcome == "match" else None
        asked_back = False
        if command is not None and command.goto is None:
            command_turns += 1
            if command_turns > MAX_COMMAND_TURNS:
                reason = f"the command {name!r} was asked for more than {MAX_COMMAND_TURNS} times"
                heard = replace(heard, outcome="no_match", value=None, reason=reason)
                command = None
        elif option is not None and needs_confirmation(spec, option, heard):
            asked_back = True
            answer = await confirm_choice(
                spec, heard.value or "", option, label, call, services, scope
            )
            if answer.outcome != "match":  # declined, unclear or silent: not taken
                heard = replace(answer, value=None)
                option = None
        _record_turn(call, label, turn, heard, name if command else None)
        last = {
            "step": label,
            "outcome": heard.outcome,
            "mode": heard.mode,
            "text": heard.text,
            "confidence": heard.confidence,
            "value": heard.value if command is None else None,
        }
        if command is not None:
            last["command"] = name
            if command.goto is not None:
                return GatherResult(None, command.goto, last, command=name)
            say_next = [render(command.help, scope)] if command.help is not None else []
            say_next += [prompt] if prompt else []
            continue
        if heard.outcome == "match":
            return GatherResult(heard.value, option.goto if option else None, last)
        counts[heard.outcome] += 1
        if asked_back:  # the menu again: the answer was heard, just not meant
            say_next = [prompt] if prompt else []
            continue
        handlers = spec.no_input if heard.outcome == "no_input" else spec.no_match
        n = counts[heard.outcome]
        reprompt = render(handlers[min(n, len(handlers)) - 1], scope) if handlers else prompt
        say_next = [reprompt] if reprompt else []
    call.record_event("gather_failed", step=label, **counts)
    return GatherResult(None, spec.on_failure, last)


def _record_turn(
    call: CallControl, label: str, turn: int, heard: Heard, command: str | None
) -> None:
    """The turn's event, and the debug line saying in words why an answer was not taken."""
    call.record_event(
        "gather",
        step=label,
        attempt=turn,
        outcome=heard.outcome,
        value=heard.value if command is None else None,
        mode=heard.mode,
        confidence=heard.confidence,
        reason=heard.reason or None,
        command=command,
    )
    if heard.outcome == "no_match":
        log.debug(f"answer rejected: {heard.reason}", step=label, attempt=turn)
