"""The scripted flow runner as a call app: the first app, and the default one.

A call names its flow with the ``flow`` start parameter (from ``/twilio/voice?flow=NAME.yaml``);
the flow's own ``voice`` and ``apology`` become the call's voice and failure policy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ivr_bridge.call.app import APOLOGY, AppFactory, AppUnavailable, FailurePolicy
from ivr_bridge.call.control import CallControl
from ivr_bridge.dialog.flow_loader import FlowError
from ivr_bridge.dialog.flow_model import Flow
from ivr_bridge.dialog.runner import run_flow
from ivr_bridge.dialog.services import FlowServices

FLOW_APP = "flow"
FLOW_PARAMETER = "flow"


@dataclass(frozen=True, slots=True)
class FlowApp:
    flow: Flow
    services: FlowServices

    @property
    def name(self) -> str:
        return f"flow:{self.flow.name}"

    @property
    def voice(self) -> str | None:
        return self.flow.voice

    @property
    def language(self) -> str | None:
        return None

    @property
    def failure(self) -> FailurePolicy:
        return FailurePolicy(apology=self.flow.apology or APOLOGY)

    async def run(self, call: CallControl) -> None:
        await run_flow(self.flow, call, self.services)


def flow_app_factory(
    flow_for: Callable[[str | None], Flow], services: Callable[[], FlowServices]
) -> AppFactory:
    """Builds the flow app of a call: ``flow_for`` finds the flow its parameters name (raising
    ``FlowError``), ``services`` gives the recognisers and environment flows use."""

    def factory(parameters: Mapping[str, str]) -> FlowApp:
        try:
            flow = flow_for(parameters.get(FLOW_PARAMETER))
        except FlowError as exc:
            raise AppUnavailable(str(exc)) from exc
        return FlowApp(flow, services())

    return factory
