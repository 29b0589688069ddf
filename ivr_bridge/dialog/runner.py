"""The flow interpreter: a program counter over the steps, a per-call variable scope.

A loop, not recursion, so ``goto`` costs nothing per jump; ``max_steps`` ends a flow that loops
forever. A runtime failure (a template naming a missing variable) raises ``FlowRuntimeError``,
which the conductor turns into an apology and a clean end of the call instead of dead air.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from ivr_bridge.call.control import BargeInPolicy, CallControl
from ivr_bridge.dialog.flow_model import (
    BranchStep,
    Flow,
    GatherStep,
    GotoStep,
    HangupStep,
    HttpStep,
    LlmStep,
    RecordStep,
    SayStep,
    SetStep,
    TransferStep,
    step_kind,
    step_label,
)
from ivr_bridge.dialog.gather import run_gather
from ivr_bridge.dialog.http_step import run_http
from ivr_bridge.dialog.llm_step import run_llm_step
from ivr_bridge.dialog.record import run_record
from ivr_bridge.dialog.say_as import spoken_forms
from ivr_bridge.dialog.services import FlowServices
from ivr_bridge.dialog.templates import TemplateRuntimeError, evaluate, render, render_value
from ivr_bridge.errors import DialogError
from ivr_bridge.llm.history import Conversation

log = structlog.get_logger(__name__)

_NOTICE = BargeInPolicy("none")
"""Transfer notices and goodbyes are heard in full."""


class FlowRuntimeError(DialogError):
    """The flow cannot go on (bad variable, endless loop); the message names the step."""


def call_scope(flow: Flow, call: CallControl, services: FlowServices) -> dict[str, Any]:
    """The variables every call starts with."""
    params = dict(call.details.parameters)
    return {
        **flow.variables,
        "params": params,
        "caller": params.get("From", ""),
        "callee": params.get("To", ""),
        "call_sid": call.details.call_sid,
        "env": {name: services.environ.get(name, default) for name, default in flow.env.items()},
        "last": {},
    }


class FlowRunner:
    def __init__(self, flow: Flow, call: CallControl, services: FlowServices) -> None:
        self.flow = flow
        self.call = call
        self.services = services
        self.scope = call_scope(flow, call, services)
        self.conversations: dict[str, Conversation] = {}
        """Each ``llm`` step's conversation, kept when the model hands the call back."""
        self._handlers: dict[type, Callable[[Any, str], Awaitable[str | None]]] = {
            SayStep: self._say,
            GatherStep: self._gather,
            BranchStep: self._branch,
            SetStep: self._set,
            GotoStep: self._goto,
            HttpStep: self._http,
            TransferStep: self._transfer,
            HangupStep: self._hangup,
            RecordStep: self._record,
            LlmStep: self._llm,
        }

    async def run(self) -> None:
        """Run from the first step until a hangup/transfer or the end of the list."""
        steps = self.flow.steps
        pc: int = 0
        executed = 0
        while pc < len(steps):
            executed += 1
            step = steps[pc]
            label = step_label(step, pc)
            if executed > self.flow.max_steps:
                self._fail(label, f"more than {self.flow.max_steps} steps ran: an endless loop?")
            self.call.record_event(
                "flow_step", flow=self.flow.name, step=label, step_kind=step_kind(step)
            )
            try:
                target = await self._handlers[type(step)](step, label)
            except TemplateRuntimeError as exc:
                self._fail(label, str(exc))
            target = target or step.next
            pc = self.flow.index_of(target) if target else pc + 1
        self.call.record_event("flow_end", flow=self.flow.name)

    def _fail(self, label: str, message: str) -> None:
        self.call.record_event("flow_error", flow=self.flow.name, step=label, error=message)
        raise FlowRuntimeError(f"flow {self.flow.name!r}, step {label}: {message}")

    # --- step kinds: each returns a step id to jump to, or None to go on ---------------------

    async def _say(self, step: SayStep, label: str) -> str | None:
        policy = BargeInPolicy(step.barge_in) if step.barge_in else None
        if step.audio is not None:
            await self.call.play(self.flow.audio(step.audio), label=step.audio, barge_in=policy)
        else:
            await self.call.say(render(step.say or "", self.scope), barge_in=policy)
        return None

    async def _gather(self, step: GatherStep, label: str) -> str | None:
        result = await run_gather(
            step.gather, label, self.call, self.services, self.scope, self.flow.commands
        )
        if step.gather.sensitive and result.value:
            self.call.mark_sensitive(result.value)
        self.scope[step.gather.into or label] = result.value
        self.scope["last"] = result.last
        return result.goto

    async def _branch(self, step: BranchStep, label: str) -> str | None:
        for case in step.branch:
            if case.when is None or evaluate(case.when, self.scope):
                self.call.record_event("branch", step=label, when=case.when, goto=case.goto)
                return case.goto
        return None

    async def _set(self, step: SetStep, label: str) -> str | None:
        for name, value in step.set.items():
            self.scope[name] = render_value(value, self.scope)
        return None

    async def _goto(self, step: GotoStep, label: str) -> str | None:
        return step.goto

    async def _http(self, step: HttpStep, label: str) -> str | None:
        spec = step.http
        outcome = await run_http(spec, label, self.call, self.scope, self.services.http_max_bytes)
        if spec.sensitive and outcome.ok:
            for value in _leaves(outcome.data):
                self.call.mark_sensitive(value)
                for words in spoken_forms(value):  # {{ balance | currency }}
                    self.call.mark_sensitive(words)
        self.scope[spec.into] = outcome.data if outcome.ok else None
        self.scope["last"] = {"step": label, "status": outcome.status, "error": outcome.error}
        return None if outcome.ok else spec.on_failure

    async def _transfer(self, step: TransferStep, label: str) -> str | None:
        number = render(step.transfer.to, self.scope).strip()
        if not number:  # e.g. an env default left empty: dialling "" would drop the call
            self._fail(label, f"transfer number {step.transfer.to!r} rendered empty")
        if step.transfer.say is not None:
            await self.call.say(render(step.transfer.say, self.scope), barge_in=_NOTICE)
        self.call.record_event("flow_transfer", step=label, to=number)
        await self.call.transfer(number)
        return None

    async def _hangup(self, step: HangupStep, label: str) -> str | None:
        if not isinstance(step.hangup, bool) and step.hangup.say is not None:
            await self.call.say(render(step.hangup.say, self.scope), barge_in=_NOTICE)
        await self.call.hangup()
        return None

    async def _record(self, step: RecordStep, label: str) -> str | None:
        recorded = await run_record(step.record, label, self.call, self.services, self.scope)
        self.scope[step.record.into] = recorded.text
        self.scope["last"] = {
            "step": label,
            "audio_ms": recorded.audio_ms,
            "confidence": recorded.confidence,
        }
        return None

    async def _llm(self, step: LlmStep, label: str) -> str | None:
        return await run_llm_step(
            step.llm, label, self.call, self.services, self.scope, self.conversations
        )


def _leaves(data: Any) -> list[str]:
    """Every scalar in a JSON value, as the text a template would render it as."""
    if isinstance(data, dict):
        return [leaf for value in data.values() for leaf in _leaves(value)]
    if isinstance(data, list):
        return [leaf for value in data for leaf in _leaves(value)]
    if data is None or isinstance(data, bool):
        return []
    return [str(data)]


async def run_flow(flow: Flow, call: CallControl, services: FlowServices | None = None) -> None:
    """The dialog a call runs: interpret ``flow`` against ``call``."""
    await FlowRunner(flow, call, services or FlowServices()).run()
