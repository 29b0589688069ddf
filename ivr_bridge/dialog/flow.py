"""Flow files: the scripted dialog a call runs (YAML in the flows directory).

This is the first cut: a flow is a list of steps, each ``say`` or ``hangup``. The full step set
(gather, branch, http, transfer, record, llm) arrives with the scripted-flows work.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from ivr_bridge.dialog.control import CallControl


class FlowError(Exception):
    """A flow file cannot be used; the message names the file and the problem."""


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = None


class SayStep(_Step):
    kind: Literal["say"] = "say"
    say: str = Field(min_length=1)


class HangupStep(_Step):
    kind: Literal["hangup"] = "hangup"
    hangup: Literal[True] = True


Step = Annotated[SayStep | HangupStep, Field(union_mode="left_to_right")]


class Flow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str | None = None
    voice: str | None = None
    steps: list[Step] = Field(min_length=1)


DEFAULT_FLOW = Flow(
    name="default",
    steps=[
        SayStep(say="Hello! This line is answered by ivr-bridge. Goodbye."),
        HangupStep(),
    ],
)


def resolve_flow_path(flows_dir: Path, name: str) -> Path:
    """A flow named by a caller must stay inside the flows directory."""
    base = flows_dir.resolve()
    path = (base / name).resolve()
    if base not in path.parents or path.suffix not in (".yaml", ".yml"):
        raise FlowError(f"flow {name!r} is not a .yaml file inside {flows_dir}")
    return path


def load_flow(path: Path) -> Flow:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FlowError(f"{path}: cannot read flow file: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise FlowError(f"{path}: not valid YAML: {exc}") from None
    try:
        return Flow.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise FlowError(f"{path}: {problems}") from None


async def run_flow(flow: Flow, call: CallControl) -> None:
    """Run the steps in order; a ``hangup`` step ends the call after what was said is heard."""
    for step in flow.steps:
        if isinstance(step, SayStep):
            await call.say(step.say)
        elif isinstance(step, HangupStep):
            await call.hangup()
