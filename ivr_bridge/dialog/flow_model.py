"""The flow file schema: one pydantic model per step kind, strict (unknown fields are errors).

A step is a YAML mapping whose kind is named by its key (``say:``, ``gather:``, ``goto:`` ...),
plus an optional ``id`` (a target for ``goto``/``next``) and ``next`` (where to go afterwards;
default: the step below). Cross-step checks (unique ids, targets, templates) live in the loader,
which knows the file and lines; this module only describes shapes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    field_validator,
    model_validator,
)

from ivr_bridge.dialog.commands import FlowCommand
from ivr_bridge.dialog.llm_spec import LlmSpec

BargeInName = Literal["any", "speech", "dtmf", "none"]
NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
STEP_ID = r"^[A-Za-z_][A-Za-z0-9_-]*$"
DIGITS = r"^[0-9*#]+$"
RESERVED_VARIABLES = frozenset({"params", "caller", "callee", "call_sid", "env", "last"})
"""Set by the runner for every call; a flow may read them but not assign them."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Step(_Model):
    id: str | None = Field(default=None, pattern=STEP_ID)
    next: str | None = None
    """Step id to continue with (default: the next step in the list)."""


# --- say ---------------------------------------------------------------------------------------


class SayStep(_Step):
    say: str | None = Field(default=None, min_length=1)
    """Text (a template) spoken through the call's speech session."""
    audio: str | None = Field(default=None, min_length=1)
    """A 16-bit PCM WAV file, relative to the flow file, played instead of speech."""
    barge_in: BargeInName | None = None
    """Who may interrupt (default: the bridge's policy)."""

    @model_validator(mode="after")
    def _text_or_audio(self) -> SayStep:
        if (self.say is None) == (self.audio is None):
            raise ValueError("a say step has exactly one of 'say' (text) and 'audio' (a WAV file)")
        return self


# --- gather ------------------------------------------------------------------------------------


class DigitRules(_Model):
    max: int = Field(default=1, ge=1, le=32)
    min: int = Field(default=1, ge=1, le=32)
    finish_on: str | None = Field(default="#", pattern=r"^[0-9*#]$")
    """Key that ends entry early (not part of the result); ``null`` for none."""
    inter_digit_timeout_ms: int = Field(default=3000, ge=200, le=60_000)

    @model_validator(mode="after")
    def _min_le_max(self) -> DigitRules:
        if self.min > self.max:
            raise ValueError(f"digits.min ({self.min}) is larger than digits.max ({self.max})")
        return self


class GatherOption(_Model):
    digits: str | None = Field(default=None, pattern=DIGITS)
    """Keys that choose this option (``"1"``)."""

    @field_validator("digits", mode="before")
    @classmethod
    def _digits_as_text(cls, value: Any) -> Any:
        """``digits: 1`` (a YAML number) means the key 1."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    phrases: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    """Spoken forms, synonyms included (``[billing, bills, payments]``)."""
    goto: str | None = None
    """Step id to continue with when this option is chosen (default: the gather's ``next``)."""
    confirm: bool = False
    """A choice hard to undo (hang up, cancel): a spoken match below the gather's
    ``confirm_below`` is asked back before it is taken. Keys are never asked back."""
    confirm_prompt: str | None = Field(default=None, min_length=1)
    """Template asking it back; ``phrase`` is the option's first phrase (default:
    ``DEFAULT_CONFIRM_PROMPT``)."""


DEFAULT_CONFIRM_PROMPT = "Did you say {{ phrase }}? Say yes or no, or press 1 for yes, 2 for no."


class GatherSpec(_Model):
    prompt: str | None = None
    """Template said before listening (and again after a failure with no handler text)."""
    barge_in: BargeInName = "any"
    digits: DigitRules | None = None
    """Digit entry rules; default for a menu: as many digits as its longest option."""
    options: dict[Annotated[str, Field(pattern=NAME)], GatherOption] = Field(default_factory=dict)
    speech: bool | None = None
    """Listen for speech too; default: when any option has phrases."""
    timeout_ms: int = Field(default=5000, ge=500, le=60_000)
    """Call time to wait for the caller to start after the prompt (no-input after this)."""
    max_speech_ms: int = Field(default=15_000, ge=1000, le=60_000)
    min_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    """A spoken match less confident than this is a no-match."""
    confirm_below: float = Field(default=0.8, ge=0.0, le=1.0)
    """A spoken match of a ``confirm: true`` option less confident than this is asked back."""
    into: str | None = Field(default=None, pattern=NAME)
    """Variable that receives the option id (menu) or the digits; default: the step id."""
    no_input: list[str] = Field(default_factory=list)
    """Said on the 1st, 2nd ... no-input (the last repeats); each should ask again."""
    no_match: list[str] = Field(default_factory=list)
    max_attempts: int = Field(default=3, ge=1, le=10)
    """Failures (no-input and no-match together) before giving up."""
    on_failure: str | None = None
    """Step id after ``max_attempts`` failures (default: continue, with the variable null)."""
    sensitive: bool = False
    """What the caller enters (a PIN, an account number) is masked in every log line of the
    call, wherever it, or a run of three or more of its digits, appears (a read-back too)."""

    @model_validator(mode="after")
    def _something_to_gather(self) -> GatherSpec:
        if not self.options and self.digits is None:
            raise ValueError("a gather needs 'options' (a menu) or 'digits' (digit entry)")
        if self.speech and not any(o.phrases for o in self.options.values()):
            raise ValueError("speech: true needs options with 'phrases' to listen for")
        keyed = [o.digits for o in self.options.values() if o.digits]
        if len(keyed) != len(set(keyed)):
            raise ValueError("two options use the same digits")
        unconfirmable = [n for n, o in self.options.items() if o.confirm and not o.phrases]
        if unconfirmable:
            raise ValueError(
                f"confirm: true is for spoken choices; option {unconfirmable[0]!r} has no "
                "'phrases' (keys are never asked back)"
            )
        return self

    @property
    def listens_for_speech(self) -> bool:
        if self.speech is not None:
            return self.speech
        return any(o.phrases for o in self.options.values())

    @property
    def digit_rules(self) -> DigitRules | None:
        if self.digits is not None:
            return self.digits
        lengths = [len(o.digits) for o in self.options.values() if o.digits]
        if not lengths:
            return None
        return DigitRules(max=max(lengths), min=min(lengths), finish_on="#")


class GatherStep(_Step):
    gather: GatherSpec


# --- branch, set, goto -------------------------------------------------------------------------


class BranchCase(_Model):
    when: str | None = None
    """A Jinja expression over the call's variables; omitted on the last, default case."""
    goto: str


class BranchStep(_Step):
    branch: list[BranchCase] = Field(min_length=1)

    @model_validator(mode="after")
    def _default_last(self) -> BranchStep:
        if any(case.when is None for case in self.branch[:-1]):
            raise ValueError("only the last branch case may omit 'when' (it is the default)")
        return self


class SetStep(_Step):
    set: dict[Annotated[str, Field(pattern=NAME)], Any] = Field(min_length=1)
    """Variables to assign; string values are templates, other YAML values are taken as-is."""


class GotoStep(_Step):
    goto: str


# --- http --------------------------------------------------------------------------------------


class HttpSpec(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    url: str = Field(min_length=1)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    query: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    timeout_ms: int = Field(default=3000, ge=100, le=30_000)
    into: str = Field(pattern=NAME)
    """Variable that receives the response's JSON."""
    on_failure: str
    """Step id when the request fails (network, timeout, non-2xx status, not JSON)."""
    sensitive: bool = False
    """Every value in the response (a balance, a date of birth) is masked in every log line
    of the call, read back by the bot or not."""


class HttpStep(_Step):
    http: HttpSpec


# --- transfer, hangup --------------------------------------------------------------------------


class TransferSpec(_Model):
    to: str = Field(min_length=1)
    """Number (or SIP URI) to dial; a template."""
    say: str | None = None
    """Notice heard in full before the transfer."""


class TransferStep(_Step):
    transfer: TransferSpec


class HangupSpec(_Model):
    say: str | None = None
    """Goodbye heard in full before the call ends."""


class HangupStep(_Step):
    hangup: Literal[True] | HangupSpec = True


# --- record, llm -------------------------------------------------------------------------------


class RecordSpec(_Model):
    prompt: str | None = None
    barge_in: BargeInName = "none"
    into: str = Field(pattern=NAME)
    """Variable that receives the transcription ("" when nothing was said or no transcriber)."""
    timeout_ms: int = Field(default=5000, ge=500, le=60_000)
    """Call time to wait for the caller to start speaking."""
    end_silence_ms: int = Field(default=1500, ge=200, le=10_000)
    """After an utterance, this long without new speech ends the recording."""
    max_ms: int = Field(default=30_000, ge=1000, le=300_000)
    finish_on: str | None = Field(default="#", pattern=r"^[0-9*#]$")
    transcribe: bool = True


class RecordStep(_Step):
    record: RecordSpec


class LlmStep(_Step):
    """Hands the call to the LLM dialog until the model transfers, hangs up or says ``goto``."""

    llm: LlmSpec = Field(default_factory=LlmSpec)

    @field_validator("llm", mode="before")
    @classmethod
    def _bare(cls, value: Any) -> Any:
        """``- llm:`` with nothing under it means every default."""
        return {} if value is None else value


STEP_KEYS: dict[str, str] = {
    "say": "say",
    "audio": "say",
    "gather": "gather",
    "branch": "branch",
    "set": "set",
    "goto": "goto",
    "http": "http",
    "transfer": "transfer",
    "hangup": "hangup",
    "record": "record",
    "llm": "llm",
}
STEP_KINDS = tuple(dict.fromkeys(STEP_KEYS.values()))


def step_kind(value: Any) -> str | None:
    """A step's kind is the first kind key it carries."""
    if isinstance(value, BaseModel):
        return next(k for k, cls in _CLASSES.items() if isinstance(value, cls))
    if isinstance(value, dict):
        return next((STEP_KEYS[k] for k in value if k in STEP_KEYS), None)
    return None


_CLASSES: dict[str, type[_Step]] = {
    "say": SayStep,
    "gather": GatherStep,
    "branch": BranchStep,
    "set": SetStep,
    "goto": GotoStep,
    "http": HttpStep,
    "transfer": TransferStep,
    "hangup": HangupStep,
    "record": RecordStep,
    "llm": LlmStep,
}

Step = Annotated[
    Annotated[SayStep, Tag("say")]
    | Annotated[GatherStep, Tag("gather")]
    | Annotated[BranchStep, Tag("branch")]
    | Annotated[SetStep, Tag("set")]
    | Annotated[GotoStep, Tag("goto")]
    | Annotated[HttpStep, Tag("http")]
    | Annotated[TransferStep, Tag("transfer")]
    | Annotated[HangupStep, Tag("hangup")]
    | Annotated[RecordStep, Tag("record")]
    | Annotated[LlmStep, Tag("llm")],
    Discriminator(
        step_kind,
        custom_error_type="unknown_step",
        custom_error_message=f"a step is one of: {', '.join(STEP_KINDS)}",
    ),
]


class Flow(_Model):
    name: str = Field(min_length=1)
    description: str | None = None
    voice: str | None = None
    """Bot voice for this flow (default: ``IVR_VOICE``)."""
    apology: str | None = Field(default=None, min_length=1, max_length=1000)
    """What the caller hears (in Twilio's own voice) when the call cannot go on, e.g. the
    speech service failed; default: a generic apology."""
    env: dict[Annotated[str, Field(pattern=r"^IVR_[A-Z0-9_]+$")], str] = Field(default_factory=dict)
    """Environment variables the flow reads, with defaults; templates see them as ``env.X``.
    Only names listed here are visible (and only ``IVR_*``), so secrets never reach templates."""
    variables: dict[Annotated[str, Field(pattern=NAME)], Any] = Field(default_factory=dict)
    """Initial variables (plain YAML values)."""
    commands: dict[Annotated[str, Field(pattern=NAME)], FlowCommand] = Field(default_factory=dict)
    """Phrases and keys every menu of the flow understands besides its own options
    ("agent", "repeat"); a menu's own option wins over a command with the same phrase."""
    max_steps: int = Field(default=200, ge=1, le=10_000)
    """Steps one call may run; more means a loop that never ends, and the call is ended."""
    steps: list[Step] = Field(min_length=1)

    _index: dict[str, int] = PrivateAttr(default_factory=dict)
    _audio: dict[str, bytes] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        self._index = {step.id: i for i, step in enumerate(self.steps) if step.id}

    def index_of(self, step_id: str) -> int:
        return self._index[step_id]

    def audio(self, path: str) -> bytes:
        """µ-law audio of a ``say.audio`` file, loaded with the flow."""
        return self._audio[path]

    def set_audio(self, audio: dict[str, bytes]) -> None:
        self._audio = dict(audio)


def step_label(step: Any, index: int) -> str:
    """How messages and events name a step: its id, else its position."""
    return step.id or f"#{index + 1}"
