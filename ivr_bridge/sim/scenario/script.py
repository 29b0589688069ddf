"""Caller scripts: what the simulated caller does and what the run must show, validated from YAML.

A script is a list of steps (say, play, press, silence, wait_for_bot, barge_in, hangup) and a set
of expectations. Errors name the file and the line, because scripts are written by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from ivr_bridge.errors import SimulationError
from ivr_bridge.sim.scenario.caller_voice import DEFAULT_NEURAL_CALLER_VOICE
from ivr_bridge.sim.scenario.matching import DEFAULT_SIMILARITY
from ivr_bridge.sim.twilio.line import LineSettings, NoiseSettings

DEFAULT_CALLER_VOICE = DEFAULT_NEURAL_CALLER_VOICE
"""A person's voice (the neural model, lower than the bot's ``heart``), told apart from the bot;
espeak voices (``brandon``, ``en-us+m3``...) are the harder, robotic variants."""
SHIPPED_SCRIPTS = Path(__file__).with_name("scripts")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SayStep(_Model):
    say: str = Field(min_length=1)
    voice: str | None = None
    """Overrides the caller's voice for this utterance."""


class PlayStep(_Model):
    play: str = Field(min_length=1)
    """WAV file; a relative path is relative to the script file."""


class PressStep(_Model):
    press: str = Field(pattern=r"^[0-9*#]+$")
    gap_ms: int = Field(default=200, ge=20)
    """Call time between digits."""


class SilenceStep(_Model):
    silence: int = Field(ge=0)
    """Milliseconds of line silence (µ-law 0xFF frames keep flowing)."""


class WaitForBot(_Model):
    quiet_ms: int = Field(default=600, ge=0)
    """The bot counts as finished after its audio drained and this long passed without more."""
    timeout_ms: int = Field(default=20_000, gt=0)


class WaitForBotStep(_Model):
    wait_for_bot: WaitForBot = WaitForBot()


class BargeIn(_Model):
    after_ms: int = Field(ge=0)
    """How far into the bot's (next or current) speech the caller starts."""
    say: str | None = None
    play: str | None = None
    press: str | None = Field(default=None, pattern=r"^[0-9*#]+$")
    voice: str | None = None
    timeout_ms: int = Field(default=20_000, gt=0)
    """Give up when the bot does not speak for this long."""

    @model_validator(mode="after")
    def _one_action(self) -> BargeIn:
        if sum(x is not None for x in (self.say, self.play, self.press)) != 1:
            raise ValueError("barge_in needs exactly one of say, play, press")
        return self


class BargeInStep(_Model):
    barge_in: BargeIn


class HangupStep(_Model):
    hangup: dict[str, Any] = Field(default_factory=dict, max_length=0)


SIMPLE_STEP_KINDS = ("say", "play", "press", "silence", "wait_for_bot", "barge_in", "hangup")
STEP_KINDS = (*SIMPLE_STEP_KINDS, "if_bot_said", "converse")
_NO_ARGUMENT_STEPS = ("wait_for_bot", "hangup")


def _step_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, dict):
        return next((kind for kind in STEP_KINDS if kind in value), None)
    return None


SimpleStep = Annotated[
    Annotated[SayStep, Tag("say")]
    | Annotated[PlayStep, Tag("play")]
    | Annotated[PressStep, Tag("press")]
    | Annotated[SilenceStep, Tag("silence")]
    | Annotated[WaitForBotStep, Tag("wait_for_bot")]
    | Annotated[BargeInStep, Tag("barge_in")]
    | Annotated[HangupStep, Tag("hangup")],
    Discriminator(
        _step_kind,
        custom_error_type="unknown_step",
        custom_error_message=f"a step inside a branch is one of: {', '.join(SIMPLE_STEP_KINDS)}",
    ),
]


class IfBotSaid(_Model):
    """Branch on what the caller just heard (the bot's words since the caller's last turn)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    phrase: str = Field(min_length=1)
    similarity: float = Field(default=DEFAULT_SIMILARITY, gt=0, le=1)
    then: list[SimpleStep] = Field(default_factory=list)
    otherwise: list[SimpleStep] = Field(default_factory=list, alias="else")

    @field_validator("then", "otherwise", mode="before")
    @classmethod
    def _bare_step_names(cls, value: Any) -> Any:
        return normalise_steps(value)


class IfBotSaidStep(_Model):
    if_bot_said: IfBotSaid


class Converse(_Model):
    """An LLM plays the caller for the rest of the call (see ``sim/scenario/llm_caller.py``)."""

    goal: str = Field(min_length=1)
    """What the caller wants ("find out the balance of account 4417, then hang up")."""
    persona: str = ""
    """Who the caller is ("an impatient caller in their sixties")."""
    max_turns: int = Field(default=8, ge=1, le=50)
    """Caller turns before it gives up and hangs up."""
    model: str | None = None
    """Default: ``IVR_CALLER_LLM_MODEL``."""
    base_url: str | None = Field(default=None, pattern=r"^https?://")
    """An OpenAI-compatible API (default ``IVR_CALLER_LLM_BASE_URL``, else OpenAI's)."""
    api_key_env: str = Field(default="IVR_CALLER_LLM_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """The environment variable holding the key (never the key itself in a suite)."""
    temperature: float | None = Field(default=None, ge=0, le=2)
    timeout_s: float = Field(default=20.0, gt=0, le=120)
    """Longest wait for the model's reply before the caller hangs up."""
    wait_for_bot: WaitForBot = WaitForBot()
    """How each turn waits for the agent to finish speaking."""


class ConverseStep(_Model):
    converse: Converse


Step = Annotated[
    Annotated[SayStep, Tag("say")]
    | Annotated[PlayStep, Tag("play")]
    | Annotated[PressStep, Tag("press")]
    | Annotated[SilenceStep, Tag("silence")]
    | Annotated[WaitForBotStep, Tag("wait_for_bot")]
    | Annotated[BargeInStep, Tag("barge_in")]
    | Annotated[HangupStep, Tag("hangup")]
    | Annotated[IfBotSaidStep, Tag("if_bot_said")]
    | Annotated[ConverseStep, Tag("converse")],
    Discriminator(
        _step_kind,
        custom_error_type="unknown_step",
        custom_error_message=f"a step is one of: {', '.join(STEP_KINDS)}",
    ),
]


def all_steps(steps: list[Any]) -> list[Any]:
    """Every step, the ones inside branches too (for preparing audio, and for what a script
    needs)."""
    out: list[Any] = []
    for step in steps:
        out.append(step)
        if isinstance(step, IfBotSaidStep):
            out += [*step.if_bot_said.then, *step.if_bot_said.otherwise]
    return out


def normalise_steps(value: Any) -> Any:
    """``- hangup`` and ``- wait_for_bot`` need no argument; ``hangup:`` (null) neither."""
    if not isinstance(value, list):
        return value
    out = []
    for item in value:
        if isinstance(item, str) and item in _NO_ARGUMENT_STEPS:
            item = {item: {}}
        elif isinstance(item, dict):
            item = {
                k: ({} if v is None and k in _NO_ARGUMENT_STEPS else v) for k, v in item.items()
            }
        out.append(item)
    return out


class CallerSettings(_Model):
    model_config = ConfigDict(populate_by_name=True)

    voice: str = DEFAULT_CALLER_VOICE
    from_number: str = Field(default="+15005550006", alias="from")
    to: str = "+15005550001"
    max_duration_ms: int = Field(default=180_000, gt=0)
    """The caller hangs up when the call lasts this long (call time)."""
    rate: float = Field(default=1.0, ge=0.5, le=2.0)
    """Speaking rate (1.0 = the voice's own; 1.3 a hurried caller)."""
    loudness_db: float = Field(default=0.0, ge=-30, le=12)
    """Gain on the caller's speech (-12 a quiet, distant caller; +6 a loud one, clipping)."""
    noise: NoiseSettings | None = None
    """Background noise on every frame the caller sends, at an SNR against its speech."""
    line: LineSettings = LineSettings()
    """Packet loss, jitter and clipping on the way to the agent."""


Ending = Literal["hangup", "dial", "caller_hangup", "stream_closed", "apology", "other"]
"""How a call ended; ``apology``: the bot's last words (or the TwiML's) said sorry."""


class Expectations(_Model):
    ended: Ending | None = None
    """An apology is never ``hangup``: a call that ended saying sorry fails ``ended: hangup``."""
    dial: str | None = None
    """Exact dial target; implies ``ended: dial``."""
    bot_said: list[str] = Field(default_factory=list)
    """Each phrase must be close to something the caller heard (speech-to-text of the audio)."""
    bot_said_similarity: float = Field(default=DEFAULT_SIMILARITY, gt=0, le=1)
    """How close (0-1) a heard stretch must be; see :mod:`ivr_bridge.sim.scenario.matching`."""
    keys: str | None = Field(default=None, pattern=r"^[0-9*#]*$")
    """The keys the caller pressed, in order: the keypad path its branches took ("" = none)."""
    min_bot_utterances: int | None = Field(default=None, ge=0)
    max_turn_latency_ms: int | None = Field(default=None, gt=0)
    turn_latency_p50_ms: int | None = Field(default=None, gt=0)
    """Median caller end of turn → first bot audio over the call."""
    turn_latency_p95_ms: int | None = Field(default=None, gt=0)
    clear_after_barge_in_ms: int | None = Field(default=None, gt=0)
    """Every barge-in is followed by a ``clear`` within this long."""
    max_yield_ms: int | None = Field(default=None, gt=0)
    """Every barge-in: caller onset → the bot's audio stops being heard (marks or not)."""
    max_talk_over_ms: int | None = Field(default=None, ge=0)
    """A bot utterance that starts while the caller talks overlaps it by at most this."""
    max_dead_air_ms: int | None = Field(default=None, gt=0)
    """No stretch with both sides silent longer than this, after the bot first spoke."""
    protocol_errors: int = Field(default=0, ge=0)
    """How many server messages Twilio would reject (31950/31951) are tolerated."""


class CallerScript(_Model):
    name: str = ""
    caller: CallerSettings = CallerSettings()
    parameters: dict[str, str] = Field(default_factory=dict)
    """``start.customParameters`` in direct mode (webhook mode takes the TwiML's)."""
    steps: list[Step] = Field(default_factory=list)
    expect: Expectations = Expectations()
    base_dir: Path | None = None
    """Where relative ``play`` paths resolve (the script's folder); set by the loader."""

    @field_validator("steps", mode="before")
    @classmethod
    def _bare_step_names(cls, value: Any) -> Any:
        return normalise_steps(value)

    @property
    def branches(self) -> bool:
        """Whether a step acts on what the bot said (an ``if_bot_said`` branch, or an LLM
        caller): the call needs ears while it runs."""
        return any(isinstance(step, IfBotSaidStep | ConverseStep) for step in self.steps)

    def needs_words(self) -> bool:
        """Whether the bot's words must be transcribed: checked words, an ending (an apology is
        heard), or a branch."""
        return bool(self.expect.bot_said) or self.expect.ended is not None or self.branches

    def resolve(self, path: str) -> Path:
        candidate = Path(path)
        if not candidate.is_absolute() and self.base_dir is not None:
            candidate = self.base_dir / candidate
        return candidate


class ScriptError(SimulationError, ValueError):
    """A caller script that cannot run; the message names file and line."""


def read_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """The document and its node tree (for line numbers); ``ValueError`` naming the line."""
    try:
        return yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{source}{where}: invalid YAML: {exc}") from None


def describe_errors(exc: ValidationError, root: yaml.Node | None, source: str, what: str) -> str:
    """Every validation problem as ``file:line: where: what``, one per line."""
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        where = ".".join(str(part) for part in loc) or what
        problems.append(f"{source}:{line_of(root, loc)}: {where}: {error['msg']}")
    return "\n".join(problems)


def parse_script(text: str, source: str = "<script>", base_dir: Path | None = None) -> CallerScript:
    """Validate a YAML caller script; ``source`` names it in error messages."""
    try:
        data, root = read_yaml(text, source)
    except ValueError as exc:
        raise ScriptError(str(exc)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScriptError(f"{source}:1: a caller script is a mapping (name, caller, steps, expect)")
    try:
        return CallerScript.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        raise ScriptError(describe_errors(exc, root, source, "script")) from None


def load_script(path_or_name: str | Path) -> CallerScript:
    """Load a script file, or a shipped script by name (``greeting`` → scripts/greeting.yaml)."""
    path = Path(path_or_name)
    if not path.exists():
        shipped = SHIPPED_SCRIPTS / f"{path_or_name}.yaml"
        if shipped.exists():
            path = shipped
        else:
            raise ScriptError(f"{path_or_name}: no such script file or shipped script")
    return parse_script(path.read_text(encoding="utf-8"), str(path), path.resolve().parent)


def shipped_scripts() -> list[str]:
    """Names of the scripts that ship with the package (for ``ivr-bridge demo``)."""
    return sorted(p.stem for p in SHIPPED_SCRIPTS.glob("*.yaml"))


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """1-based line of the deepest YAML node the error location reaches."""
    if node is None:
        return 1
    best = node
    for part in loc:
        child = None
        if isinstance(best, yaml.MappingNode):
            child = next((v for k, v in best.value if k.value == str(part)), None)
        elif isinstance(best, yaml.SequenceNode) and isinstance(part, int):
            child = best.value[part] if part < len(best.value) else None
        if child is not None:
            best = child
        # Parts YAML does not have (union tags, model names) are skipped.
    return best.start_mark.line + 1
