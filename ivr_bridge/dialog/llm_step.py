"""The ``llm`` flow step: hand the call to the LLM dialog, continue where the model says.

Configuration is checked at the step, not at startup, by design: the server loads every flow in
the flows directory at startup, and a bridge whose flows never reach an ``llm`` step (or whose
operator has not set ``IVR_LLM_*`` yet) must still start. When the LLM or the caller-turn
recogniser is not configured, the step logs the reason (naming the variable, never a key), then
either continues at ``on_unavailable`` or says ``unavailable_say`` and ends the call politely.
``llm_configuration_problem`` lets the server warn about it at startup without failing.

The model's conversation is kept per step for the whole call, so a caller sent back to the menu
(``goto_step``) and then to the assistant again continues the same conversation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import structlog

from ivr_bridge.call.control import BargeInPolicy, CallControl
from ivr_bridge.config import ConfigError
from ivr_bridge.dialog.flow_model import Flow, LlmStep
from ivr_bridge.dialog.llm_dialog import LlmDialogConfig, run_llm_dialog
from ivr_bridge.dialog.llm_spec import LlmSpec
from ivr_bridge.dialog.services import FlowServices, RecognizerUnavailable
from ivr_bridge.dialog.templates import render, render_value
from ivr_bridge.llm.factory import check_provider_config
from ivr_bridge.llm.history import Conversation
from ivr_bridge.llm.prompt import build_system_prompt
from ivr_bridge.llm.settings import LLMSettings
from ivr_bridge.llm.tools import HttpTool, ToolConfig

log = structlog.get_logger(__name__)

_NOTICE = BargeInPolicy("none")


async def run_llm_step(
    spec: LlmSpec,
    label: str,
    call: CallControl,
    services: FlowServices,
    scope: dict[str, Any],
    conversations: dict[str, Conversation],
) -> str | None:
    """Run the dialog; returns the step id to continue at (``goto_step``), else the call ended."""
    try:
        settings = services.llm_settings()
        transcriber = services.turn_transcriber()
        live = services.live_transcriber()
        provider = services.llm_provider(settings)
    except (ConfigError, RecognizerUnavailable) as exc:
        return await _unavailable(spec, label, call, scope, str(exc))
    try:
        conversation = conversations.get(label)
        if conversation is None:
            conversation = conversations[label] = Conversation(_system_prompt(spec, scope))
        call.record_event("llm_start", step=label, provider=provider.name)
        outcome = await run_llm_dialog(
            call,
            provider,
            transcriber,
            _dialog_config(spec, settings, scope),
            system_prompt=conversation.system,
            conversation=conversation,
            live=live,
        )
    finally:
        await provider.close()
        if live is not None:
            await live.close()
    call.record_event("llm_end", step=label, outcome=outcome.kind, goto=outcome.step_id)
    scope["last"] = {"step": label, "outcome": outcome.kind}
    return outcome.step_id if outcome.kind == "goto" else None


def _system_prompt(spec: LlmSpec, scope: dict[str, Any]) -> str:
    persona = render(spec.system_prompt, scope) if spec.system_prompt else None
    context = {name: render(text, scope) for name, text in spec.context.items()}
    return build_system_prompt(persona=persona, context=context, phone_style=spec.phone_style)


def _dialog_config(spec: LlmSpec, settings: LLMSettings, scope: dict[str, Any]) -> LlmDialogConfig:
    transfer_to = render(spec.transfer_to, scope).strip() if spec.transfer_to else None
    tools = ToolConfig(
        transfer_to=transfer_to or None,
        transfer_allowed=tuple(render(n, scope).strip() for n in spec.transfer_allowed),
        goto_steps=tuple(spec.goto),
        http_tools=tuple(
            HttpTool(
                name=tool.name,
                description=tool.description,
                url=render(tool.url, scope),
                parameters=dict(tool.parameters),
                method=tool.method,
                headers=render_value(dict(tool.headers), scope),
                timeout_ms=tool.timeout_ms,
            )
            for tool in spec.tools
        ),
        allow_end_call=spec.end_call,
    )
    return LlmDialogConfig(
        settings=settings,
        tools=tools,
        greeting=render(spec.greeting, scope) if spec.greeting else None,
        barge_in=BargeInPolicy(spec.barge_in) if spec.barge_in else None,
        no_input_timeout_ms=spec.no_input_timeout_ms,
        max_no_input=spec.max_no_input,
        max_turns=spec.max_turns,
        reprompt_text=spec.reprompt,
        goodbye_text=spec.goodbye,
    )


async def _unavailable(
    spec: LlmSpec, label: str, call: CallControl, scope: dict[str, Any], reason: str
) -> str | None:
    """No model or no recogniser: never dead air, never a crash; the reason goes to the log."""
    log.error("the llm step cannot run; check the configuration", step=label, reason=reason)
    call.record_event("llm_unavailable", step=label, reason=reason)
    if spec.on_unavailable is not None:
        return spec.on_unavailable
    await call.say(render(spec.unavailable_say, scope), barge_in=_NOTICE)
    await call.hangup()
    return None


def llm_configuration_problem(flows: Iterable[Flow], services: FlowServices) -> str | None:
    """Why the loaded flows' ``llm`` steps cannot run (for a startup warning), or None."""
    if not any(isinstance(step, LlmStep) for flow in flows for step in flow.steps):
        return None
    try:
        check_provider_config(services.llm_settings())
        services.turn_transcriber()
    except (ConfigError, RecognizerUnavailable) as exc:
        return str(exc)
    return None
