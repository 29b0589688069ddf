"""A test suite: scenarios (a caller script, a target, repeats, a pass rate, tags) in one YAML file.

A scenario is a caller script (``caller``, ``steps``, ``expect``, ``parameters``: exactly the
fields of :class:`ivr_bridge.sim.script.CallerScript`) plus where to call and how often. Suites
default what scenarios leave out, so twenty scenarios against one flow name it once. Every
problem is reported as ``file:line: where: what``, all of them at once, before anything dials.

Targets: ``flow`` (one of our flows, on a bridge the tester starts with the embedded speech
server), ``url`` (a running bridge's voice webhook, signed like Twilio) or ``ws_url`` (any
Media Streams WebSocket server; no webhook, no marks expected).
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ivr_bridge.errors import SimulationError
from ivr_bridge.sim.script import (
    CallerScript,
    CallerSettings,
    Expectations,
    Step,
    describe_errors,
    line_of,
    load_script,
    normalise_steps,
    read_yaml,
)


def slug(name: str) -> str:
    """A file-system name for a scenario ("Balance by voice!" → "balance-by-voice")."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "scenario"


class SuiteError(SimulationError, ValueError):
    """A suite that cannot run; the message names file and line of every problem."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(_Model):
    """Where a scenario's call goes: one of ``flow``, ``url``, ``ws_url``."""

    flow: str | None = None
    """A flow file in the bridge's ``flows_dir`` (the tester starts that bridge)."""
    query: dict[str, str] = Field(default_factory=dict)
    """Added to the voice webhook URL (``flow`` targets): e.g. an appointment's details."""
    url: str | None = Field(default=None, pattern=r"^https?://")
    """A running bridge's voice webhook (``https://host/twilio/voice``)."""
    ws_url: str | None = Field(default=None, pattern=r"^wss?://")
    """Any Media Streams server, opened directly."""

    @property
    def kind(self) -> str:
        return "flow" if self.flow else "url" if self.url else "ws_url" if self.ws_url else ""

    def describe(self) -> str:
        return self.flow or self.url or self.ws_url or "(none)"


class BridgeSettings(_Model):
    """The bridge the tester starts for ``flow`` targets."""

    flows_dir: str = "flows"
    """Relative to the suite file."""
    voice: str = "heart"
    """The bot's voice: the neural one, which speech-to-text hears as a person would."""
    env: dict[str, str] = Field(default_factory=dict)
    """Environment the flows read per call; ``${backend}`` is the backend stand-in's URL."""
    backend: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Paths the tester serves as JSON (``/balance: {balance: "42.50"}``) for flows to call."""


class Defaults(_Model):
    target: Target = Target()
    caller: CallerSettings | None = None
    speed: float = Field(default=4.0, gt=0)
    """Virtual clock speed for every call (timing checks judge with the slack it implies)."""
    repeat: int = Field(default=1, ge=1, le=1000)
    pass_rate: float = Field(default=1.0, ge=0, le=1)


class Scenario(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1)
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    target: Target | None = None
    persona: str | None = None
    """A persona from the suite's ``personas`` (the caller's voice, rate, loudness, noise, line)."""
    script: str | None = None
    """A caller script file (relative to the suite) instead of inline caller/steps/expect."""
    caller: CallerSettings | None = None
    parameters: dict[str, str] = Field(default_factory=dict)
    steps: list[Step] = Field(default_factory=list)
    expect: Expectations = Expectations()
    repeat: int | None = Field(default=None, ge=1, le=1000)
    pass_rate: float | None = Field(default=None, ge=0, le=1)
    """Share of repeats that must pass (``repeat: 5, pass_rate: 0.8``: four of five)."""

    @model_validator(mode="before")
    @classmethod
    def _bare_steps(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("steps"), list):
            data = {**data, "steps": normalise_steps(data["steps"])}
        return data

    @model_validator(mode="after")
    def _script_or_steps(self) -> Scenario:
        if self.script is not None and self.steps:
            raise ValueError("give either script (a file) or steps, not both")
        if self.script is None and not self.steps:
            raise ValueError("a scenario needs steps (or a script file)")
        return self


class Suite(_Model):
    name: str = Field(min_length=1)
    description: str = ""
    bridge: BridgeSettings = BridgeSettings()
    defaults: Defaults = Defaults()
    personas: dict[str, CallerSettings] = Field(default_factory=dict)
    """Named callers scenarios pick with ``persona:``."""
    seed: int = 0
    """Draws every call's noise, lost packets and jitter: the same seed, the same calls."""
    scenarios: list[Scenario] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Suite:
        seen: dict[str, str] = {}
        for scenario in self.scenarios:
            folder = slug(scenario.name)
            if folder in seen:
                raise ValueError(
                    f"scenarios {seen[folder]!r} and {scenario.name!r} would share the output "
                    f"folder {folder!r}: name them apart"
                )
            seen[folder] = scenario.name
        return self


class PlannedScenario(BaseModel):
    """A scenario with the suite's defaults applied and its caller script built."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    description: str
    tags: list[str]
    target: Target
    script: CallerScript
    repeat: int
    pass_rate: float
    speed: float
    seed: int

    def seed_for(self, index: int) -> int:
        """The seed of repeat ``index``: stable across runs, different for every call."""
        return zlib.crc32(f"{self.seed}:{self.name}:{index}".encode())


class LoadedSuite(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    suite: Suite
    path: Path
    scenarios: list[PlannedScenario]

    @property
    def flows_dir(self) -> Path:
        return (self.path.parent / self.suite.bridge.flows_dir).resolve()

    def needs_bridge(self) -> bool:
        return any(s.target.kind == "flow" for s in self.scenarios)


def parse_suite(text: str, path: Path) -> LoadedSuite:
    """Validate a suite; :class:`SuiteError` lists every problem with its file and line."""
    source = str(path)
    try:
        data, root = read_yaml(text, source)
    except ValueError as exc:
        raise SuiteError(str(exc)) from None
    if not isinstance(data, dict):
        raise SuiteError(f"{source}:1: a suite is a mapping (name, bridge, defaults, scenarios)")
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        raise SuiteError(describe_errors(exc, root, source, "suite")) from None
    problems: list[str] = []
    planned: list[PlannedScenario] = []
    for index, scenario in enumerate(suite.scenarios):
        line = line_of(root, ("scenarios", index))
        try:
            planned.append(_plan(suite, scenario, path))
        except (SimulationError, ValueError) as exc:
            problems.append(f"{source}:{line}: scenarios.{index} ({scenario.name}): {exc}")
    if problems:
        raise SuiteError("\n".join(problems))
    return LoadedSuite(suite=suite, path=path, scenarios=planned)


def load_suite(path: str | Path) -> LoadedSuite:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(f"{file}: cannot read the suite ({exc.strerror or exc})") from None
    return parse_suite(text, file.resolve())


def _plan(suite: Suite, scenario: Scenario, path: Path) -> PlannedScenario:
    defaults = suite.defaults
    target = scenario.target or defaults.target
    if sum(x is not None for x in (target.flow, target.url, target.ws_url)) != 1:
        raise ValueError("the target needs exactly one of flow, url, ws_url")
    if scenario.persona is not None and scenario.persona not in suite.personas:
        known = ", ".join(sorted(suite.personas)) or "none defined"
        raise ValueError(f"no persona {scenario.persona!r} (personas: {known})")
    if scenario.persona is not None and scenario.caller is not None:
        raise ValueError("give either persona or caller, not both")
    caller = (
        suite.personas[scenario.persona]
        if scenario.persona is not None
        else scenario.caller or defaults.caller
    )
    if scenario.script is not None:
        script = load_script(path.parent / scenario.script)
        update: dict[str, Any] = {"name": scenario.name}
        if caller is not None:
            update["caller"] = caller
        script = script.model_copy(update=update)
    else:
        script = CallerScript(
            name=scenario.name,
            caller=caller or CallerSettings(),
            parameters=scenario.parameters,
            steps=scenario.steps,
            expect=scenario.expect,
            base_dir=path.parent,
        )
    return PlannedScenario(
        name=scenario.name,
        description=scenario.description,
        tags=scenario.tags,
        target=target,
        script=script,
        repeat=scenario.repeat or defaults.repeat,
        pass_rate=scenario.pass_rate if scenario.pass_rate is not None else defaults.pass_rate,
        speed=defaults.speed,
        seed=suite.seed,
    )


def suite_json_schema() -> dict[str, Any]:
    """The JSON Schema editors validate suites with (``ivr-bridge test --schema``)."""
    schema = Suite.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ivr-bridge test suite"
    return schema
