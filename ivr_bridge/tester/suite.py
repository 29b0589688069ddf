"""A test suite: scenarios (a caller script, a target, repeats, a pass rate, tags) in one YAML file.

A scenario is a caller script (``caller``, ``steps``, ``expect``, ``parameters``: exactly the
fields of :class:`ivr_bridge.sim.scenario.script.CallerScript`) plus where to call and how often.
Suites default what scenarios leave out, so twenty scenarios against one flow name it once. Every
problem is reported as ``file:line: where: what``, all of them at once, before anything dials.

Targets: ``flow`` (one of our flows, on a bridge the tester starts with the embedded speech
server), ``url`` (a running bridge's voice webhook, signed like Twilio) or ``ws_url`` (any
Media Streams WebSocket server; no webhook, no marks expected); or ``answer``: the other way
round, an outbound agent calls the scenarios' numbers through the tester's Twilio REST stand-in
and each scenario answers as a person, a voicemail, a busy line or one that rings out
(:mod:`ivr_bridge.tester.answering`).
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ivr_bridge.errors import SimulationError
from ivr_bridge.sim.scenario.script import (
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


E164 = r"^\+[1-9][0-9]{7,14}$"


class SuiteError(SimulationError, ValueError):
    """A suite that cannot run; the message names file and line of every problem."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AnswerTarget(_Model):
    """An outbound agent that dials the scenarios: today our own reminder campaigns."""

    agent: Literal["reminder", "command"] = "reminder"
    """``reminder``: the tester runs our bridge and a campaign whose contacts are the
    scenarios' numbers, dialling through the stand-in; ``command``: any agent that dials the
    Calls API, started by ``command`` with the stand-in's URL in ``TWILIO_API_BASE_URL``."""
    command: str | None = None
    """``agent: command``: a shell command (run in the suite's folder) that places the calls;
    it gets ``TWILIO_API_BASE_URL``, ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN``,
    ``IVR_TEST_NUMBERS`` (comma-separated) and ``IVR_TEST_CONTACTS`` (JSON: number, name)."""
    business: str = Field(default="Elm Street Clinic", min_length=1, max_length=80)
    """Who the reminder speaks for."""
    callback_number: str = Field(default="+13125550199", pattern=E164)
    """The number a voicemail message asks to call back."""
    appointment_in_h: float = Field(default=48, gt=2, le=24 * 60)
    """Each contact's appointment, this many hours from the run's start."""
    timezone: str = "America/Chicago"
    cps: float = Field(default=5.0, gt=0, le=50)
    """Calls per second the campaign dials at."""
    timeout_s: float = Field(default=180, gt=0)
    """The whole run: every first call placed and ended by then, or the rest fail."""

    @model_validator(mode="after")
    def _command_for_command(self) -> AnswerTarget:
        if (self.agent == "command") != (self.command is not None):
            raise ValueError("agent: command needs command: (and only it takes one)")
        return self


class Answer(_Model):
    """How a scenario answers an ``answer`` target's call (its number, its kind of line)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    as_: Literal["human", "voicemail", "busy", "no_answer"] = Field(default="human", alias="as")
    """``human``: the scenario's steps run once the call is answered; ``voicemail``: a
    greeting, a 1 kHz tone, then it records (checks apply to the message); ``busy`` and
    ``no_answer``: nobody picks up."""
    number: str | None = Field(default=None, pattern=E164)
    """The scenario's phone number (default: one per scenario, +1 555 01xx)."""
    name: str = Field(default="Ana Lopez", min_length=1)
    """The contact's name the agent is given."""
    ring_ms: int = Field(default=2_000, ge=0, le=120_000)
    greeting: str | None = None
    """A voicemail's greeting before the tone (default: a short personal one)."""
    calls: int | None = Field(default=None, ge=0)
    """Checked: how many calls this number got during the run."""
    outcome: str | None = None
    """Checked (``agent: reminder``): the outcome the campaign recorded for the first call
    (``confirmed``, ``cancelled``, ``rescheduled``, ``opted_out``, ``voicemail``, ``busy``...)."""


class DialTarget(_Model):
    """A real phone number the tester calls over Twilio (credentials from the environment)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    to: str = Field(pattern=E164)
    """The agent's number; it must be in the suite's ``allow_numbers``."""
    from_number: str = Field(alias="from", pattern=E164)
    """A number of the Twilio account the call is placed from."""
    ring_timeout_s: int = Field(default=30, ge=5, le=120)
    time_limit_s: int = Field(default=120, ge=10, le=3600)
    """Twilio ends the call after this long, whatever happens (so a hung call costs little)."""


class Target(_Model):
    """Where a scenario's call goes: one of ``flow``, ``url``, ``ws_url``; or ``answer``."""

    flow: str | None = None
    """A flow file in the bridge's ``flows_dir`` (the tester starts that bridge)."""
    query: dict[str, str] = Field(default_factory=dict)
    """Added to the voice webhook URL (``flow`` targets): e.g. an appointment's details."""
    url: str | None = Field(default=None, pattern=r"^https?://")
    """A running bridge's voice webhook (``https://host/twilio/voice``)."""
    ws_url: str | None = Field(default=None, pattern=r"^wss?://")
    """Any Media Streams server, opened directly."""
    answer: AnswerTarget | None = None
    """The agent calls the scenarios instead (each scenario says how it answers)."""
    dial: DialTarget | None = None
    """A phone number, called over Twilio."""

    @property
    def kind(self) -> str:
        if self.answer is not None:
            return "answer"
        if self.dial is not None:
            return "dial"
        return "flow" if self.flow else "url" if self.url else "ws_url" if self.ws_url else ""

    def describe(self) -> str:
        if self.answer is not None:
            return f"answering {self.answer.agent} calls"
        if self.dial is not None:
            return f"dial {self.dial.to}"
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
    answer: Answer | None = None
    """``answer`` targets: this scenario's number and how it answers the agent's call."""
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
        kind = self.answer.as_ if self.answer is not None else "human"
        answering = kind != "human"
        if answering and (self.steps or self.script):
            raise ValueError(f"a {kind} line has no steps: only a person's call does")
        if self.script is None and not self.steps and not answering:
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
    allow_numbers: list[str] = Field(default_factory=list)
    """The only numbers ``dial`` targets may call (a real call costs money and reaches
    someone: list each on purpose)."""
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
    answer: Answer | None = None
    repeat: int
    pass_rate: float
    speed: float
    seed: int

    number: str = ""
    """``answer`` targets: the number the agent calls to reach this scenario."""

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

    def dials(self) -> bool:
        return any(s.target.kind == "dial" for s in self.scenarios)

    def answering(self) -> AnswerTarget | None:
        """The agent an ``answer`` suite waits for (every scenario answers the same one)."""
        return self.scenarios[0].target.answer if self.scenarios else None


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
            planned.append(_plan(suite, scenario, path, index))
        except (SimulationError, ValueError) as exc:
            problems.append(f"{source}:{line}: scenarios.{index} ({scenario.name}): {exc}")
    if not problems:
        problems = [f"{source}:{line_of(root, ('scenarios',))}: {p}" for p in _answering(planned)]
    if problems:
        raise SuiteError("\n".join(problems))
    return LoadedSuite(suite=suite, path=path, scenarios=planned)


def default_number(index: int) -> str:
    """The phone number of the ``index``-th scenario an agent calls (+1 555 010 0000 on)."""
    return f"+1555010{index:04d}"


def _answering(planned: list[PlannedScenario]) -> list[str]:
    """An ``answer`` suite: one agent for all, and one number per scenario."""
    agents = {s.target.answer for s in planned}
    if agents == {None}:
        return []
    if None in agents:
        return ["an answer target cannot share a suite with calls the tester places"]
    if len(agents) > 1:
        return ["every scenario of an answer suite answers the same agent (one target: answer:)"]
    [agent] = agents
    assert agent is not None
    if agent.agent == "command" and any(s.answer and s.answer.outcome for s in planned):
        return ["outcome: is read from our reminder campaign's records; a command agent has none"]
    seen: dict[str, str] = {}
    problems = []
    for s in planned:
        number = s.number
        if number in seen:
            problems.append(f"scenarios {seen[number]!r} and {s.name!r} share the number {number}")
        seen[number] = s.name
    return problems


def load_suite(path: str | Path) -> LoadedSuite:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(f"{file}: cannot read the suite ({exc.strerror or exc})") from None
    return parse_suite(text, file.resolve())


def _plan(suite: Suite, scenario: Scenario, path: Path, index: int) -> PlannedScenario:
    defaults = suite.defaults
    target = scenario.target or defaults.target
    kinds = (target.flow, target.url, target.ws_url, target.answer, target.dial)
    if sum(x is not None for x in kinds) != 1:
        raise ValueError("the target needs exactly one of flow, url, ws_url, dial, answer")
    if target.dial is not None and target.dial.to not in suite.allow_numbers:
        raise ValueError(
            f"{target.dial.to} is not in the suite's allow_numbers: list it there to call it"
        )
    if target.answer is not None and scenario.answer is None:
        raise ValueError("an answer target calls this scenario: say how it answers (answer:)")
    if target.answer is None and scenario.answer is not None:
        raise ValueError("answer: is for scenarios an agent calls (target: answer:)")
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
        answer=scenario.answer,
        number=(scenario.answer.number or default_number(index)) if scenario.answer else "",
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
