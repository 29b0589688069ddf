"""Calls as apps: the registry picks a call's app from its start parameters."""

from __future__ import annotations

import pytest

from ivr_bridge.call.app import APOLOGY, AppRegistry, AppUnavailable, DialogApp
from ivr_bridge.call.control import CallControl
from ivr_bridge.call.testing import ScriptedCall
from ivr_bridge.dialog.flow import FlowError, FlowServices, parse_flow
from ivr_bridge.dialog.flow_app import FlowApp, flow_app_factory
from ivr_bridge.errors import CallEnding

FLOW = "name: hi\nvoice: ava\napology: Sorry from the clinic.\nsteps:\n  - hangup: {say: Hi.}\n"


async def _hello(call: CallControl) -> None:
    await call.say("hello from a plain app")


def _flows(name: str | None) -> object:
    if name in (None, "hi.yaml"):
        return parse_flow(FLOW)
    raise FlowError(f"flow {name!r} does not exist in flows")


def _registry() -> AppRegistry:
    registry = AppRegistry(default="flow")
    registry.add("flow", flow_app_factory(_flows, FlowServices))  # type: ignore[arg-type]
    registry.add("hello", lambda parameters: DialogApp(_hello, name="hello"))
    return registry


async def test_the_app_parameter_picks_the_app_and_the_default_is_the_flow_runner() -> None:
    registry = _registry()
    flow_app = registry.resolve({"flow": "hi.yaml"})
    assert isinstance(flow_app, FlowApp) and flow_app.name == "flow:hi"
    assert flow_app.voice == "ava"
    assert flow_app.failure.apology == "Sorry from the clinic."
    hello = registry.resolve({"app": "hello", "flow": "hi.yaml"})
    call = ScriptedCall()
    await hello.run(call)
    assert call.said == ["hello from a plain app"]
    assert hello.failure.apology == APOLOGY and hello.voice is None


async def test_the_flow_app_runs_its_flow_against_the_call() -> None:
    call = ScriptedCall()
    with pytest.raises(CallEnding):
        await _registry().resolve({}).run(call)
    assert call.said == ["Hi."] and call.ended == ("hangup", None)


def test_an_unknown_app_or_flow_is_refused_with_what_exists() -> None:
    registry = _registry()
    with pytest.raises(AppUnavailable, match=r"no app named 'reminder' \(apps: flow, hello\)"):
        registry.check({"app": "reminder"})
    with pytest.raises(AppUnavailable, match="does not exist"):
        registry.check({"flow": "nope.yaml"})


def test_the_failure_policy_becomes_the_after_stream_apology() -> None:
    outcome = _registry().resolve({}).failure.outcome()
    assert outcome.action == "apologise" and outcome.message == "Sorry from the clinic."
