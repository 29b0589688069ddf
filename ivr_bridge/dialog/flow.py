"""Flow files: the scripted dialog a call runs (YAML in the flows directory).

The public face of the scripted-flow engine: the schema lives in ``flow_model``, loading and
checking in ``flow_loader``, the interpreter in ``runner``. Older imports use this module.
"""

from __future__ import annotations

from ivr_bridge.dialog.flow_loader import (
    FlowError,
    FlowProblem,
    load_flow,
    load_flows_dir,
    parse_flow,
    resolve_flow_path,
)
from ivr_bridge.dialog.flow_model import Flow, HangupStep, SayStep
from ivr_bridge.dialog.runner import FlowRuntimeError, run_flow
from ivr_bridge.dialog.services import FlowServices

DEFAULT_FLOW = Flow(
    name="default",
    steps=[
        SayStep(say="Hello! This line is answered by ivr-bridge. Goodbye."),
        HangupStep(),
    ],
)

__all__ = [
    "DEFAULT_FLOW",
    "Flow",
    "FlowError",
    "FlowProblem",
    "FlowRuntimeError",
    "FlowServices",
    "load_flow",
    "load_flows_dir",
    "parse_flow",
    "resolve_flow_path",
    "run_flow",
]
