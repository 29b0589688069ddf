"""Walking a step's fields: where its targets, templates and assigned variables are.

One place that knows, per step kind, which fields hold step ids, templates or variable names, so
the loader's checks (and anything else that needs them) never miss a field a new step kind adds.
Each walker yields the field's data path inside the step, for the loader to turn into a line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ivr_bridge.dialog.flow_model import (
    BranchStep,
    GatherStep,
    GotoStep,
    HangupStep,
    HttpStep,
    LlmStep,
    RecordStep,
    SayStep,
    SetStep,
    TransferStep,
)
from ivr_bridge.dialog.templates import strings_in

Path_ = tuple[str | int, ...]


def targets(step: Any) -> Iterator[tuple[Path_, str]]:
    if step.next is not None:
        yield ("next",), step.next
    if isinstance(step, GotoStep):
        yield ("goto",), step.goto
    elif isinstance(step, GatherStep):
        for name, option in step.gather.options.items():
            if option.goto is not None:
                yield ("gather", "options", name, "goto"), option.goto
        if step.gather.on_failure is not None:
            yield ("gather", "on_failure"), step.gather.on_failure
    elif isinstance(step, BranchStep):
        for n, case in enumerate(step.branch):
            yield ("branch", n, "goto"), case.goto
    elif isinstance(step, HttpStep):
        yield ("http", "on_failure"), step.http.on_failure
    elif isinstance(step, LlmStep):
        yield from step.llm.targets()


def templates(step: Any) -> Iterator[tuple[Path_, str]]:
    if isinstance(step, SayStep) and step.say is not None:
        yield ("say",), step.say
    elif isinstance(step, GatherStep):
        g = step.gather
        if g.prompt is not None:
            yield ("gather", "prompt"), g.prompt
        for handler in ("no_input", "no_match"):
            for n, text in enumerate(getattr(g, handler)):
                yield ("gather", handler, n), text
        for name, option in g.options.items():
            if option.confirm_prompt is not None:
                yield ("gather", "options", name, "confirm_prompt"), option.confirm_prompt
    elif isinstance(step, SetStep):
        for name, value in step.set.items():
            for text in strings_in(value):
                yield ("set", name), text
    elif isinstance(step, HttpStep):
        h = step.http
        yield ("http", "url"), h.url
        for section in ("query", "headers"):
            for key, text in getattr(h, section).items():
                yield ("http", section, key), text
        for text in strings_in(h.json_body):
            yield ("http", "json"), text
    elif isinstance(step, TransferStep):
        yield ("transfer", "to"), step.transfer.to
        if step.transfer.say is not None:
            yield ("transfer", "say"), step.transfer.say
    elif isinstance(step, HangupStep) and not isinstance(step.hangup, bool):
        if step.hangup.say is not None:
            yield ("hangup", "say"), step.hangup.say
    elif isinstance(step, RecordStep) and step.record.prompt is not None:
        yield ("record", "prompt"), step.record.prompt
    elif isinstance(step, LlmStep):
        yield from step.llm.templates()


def assigned(step: Any) -> Iterator[tuple[Path_, str]]:
    """The variables a step sets (``into:``, ``set:``; a gather without ``into`` its id); an
    llm step sets only ``last`` (its outcome), which every call has."""
    if isinstance(step, SetStep):
        for name in step.set:
            yield ("set", name), name
    elif isinstance(step, GatherStep):
        into = step.gather.into or step.id
        if into is not None:
            yield ("gather", "into"), into
    elif isinstance(step, HttpStep):
        yield ("http", "into"), step.http.into
    elif isinstance(step, RecordStep):
        yield ("record", "into"), step.record.into
