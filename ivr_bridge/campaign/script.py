"""The words of a reminder call: one YAML file per script in ``flows/reminders/``, a block per
language.

The words change more often than the code (a new opening line, a Spanish version, another
callback sentence) and the people who change them are not programmers, so they live in a file
next to the flows. What a key does is fixed, because it decides the outcome a campaign
reports: 1 confirm, 2 reschedule, 3 cancel, 9 stop calling, * repeat; at the identity check
1 yes, 2 no. The words say the keys; they cannot move them.

Templates are Jinja2 in the sandbox with ``StrictUndefined``; each one is rendered with sample
details when the file loads, so a misspelt variable is refused with its file and line rather
than reaching a callee. A call picks the block of its contact's language (``es-MX`` → ``es-MX``,
else ``es``); a campaign refuses at import a contact whose language its script does not speak.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ivr_bridge.campaign.reminder import ReminderDetails
from ivr_bridge.errors import CampaignError

SCRIPTS_SUBDIR = "reminders"
DEFAULT_SCRIPT = "appointment"
SCRIPT_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"
ENGLISH_WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
ENGLISH_MONTHS = [
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
]  # fmt: skip
BOOLEAN_HINT = " (YAML reads a bare yes, no, on or off as true/false: quote it)"
_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_ENV.filters["digits"] = lambda number: " ".join(str(number).lstrip("+"))


class Phrases(BaseModel):
    """What a callee may say instead of pressing the key. Empty: keys only (the recogniser's
    acoustic model is English, so other languages are answered by key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    right_person: tuple[str, ...] = ()
    """At the identity check (key 1). Not ``yes:``: YAML reads that key as true."""
    wrong_person: tuple[str, ...] = ()
    confirm: tuple[str, ...] = ()
    reschedule: tuple[str, ...] = ()
    cancel: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    repeat: tuple[str, ...] = ()


class Closings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    confirmed: str
    rescheduled: str
    cancelled: str
    opted_out: str
    no_decision: str


class Words(BaseModel):
    """Everything a call says in one language."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    voice: str | None = None
    """Speech voice for this language (None: the bridge's ``IVR_VOICE``)."""
    weekdays: tuple[str, ...] = Field(default=tuple(ENGLISH_WEEKDAYS), min_length=7, max_length=7)
    months: tuple[str, ...] = Field(default=tuple(ENGLISH_MONTHS), min_length=12, max_length=12)
    opening: str
    """Said before anyone knows whether a person or a machine answered: neutral, short."""
    identity: str
    wrong_person: str
    offer: str
    voicemail: str
    """Left after the greeting's tone: no private detail (a machine is heard by anyone)."""
    closing: Closings
    phrases: Phrases = Phrases()


class ReminderScript(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=SCRIPT_NAME)
    description: str = ""
    languages: dict[str, Words] = Field(min_length=1)

    @field_validator("languages")
    @classmethod
    def _tags(cls, value: dict[str, Words]) -> dict[str, Words]:
        for tag in value:
            if not re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*", tag):
                raise ValueError(f"{tag!r} is not a language tag: write e.g. en, es or es-MX")
        return value

    def language_for(self, tag: str) -> str | None:
        """The block a contact speaking ``tag`` hears (None: none fits)."""
        wanted = {t.lower(): t for t in self.languages}
        return wanted.get(tag.lower()) or wanted.get(tag.split("-")[0].lower())

    def problem_with(self, language: str, details: ReminderDetails) -> str | None:
        """Why a call to this contact could not be said (no such language, a field the
        words use that the contact lacks), or None."""
        block = self.language_for(language)
        if block is None:
            return (
                f"language {language!r}: the reminder script {self.name!r} speaks "
                f"{', '.join(self.languages)} (add a block to {SCRIPTS_SUBDIR}/{self.name}.yaml)"
            )
        for part in _parts(self.languages[block]):
            try:
                self.say(block, part, details)
            except CampaignError as exc:
                return f"the reminder script's {part} cannot be said to this contact: {exc}"
        return None

    def say(self, language: str, part: str, details: ReminderDetails) -> str:
        """The words of ``part`` (``opening``, ``offer``, ``closing.confirmed``...) for a call."""
        words = self.languages[language]
        source: Any = words
        for key in part.split("."):
            source = getattr(source, key)
        return render(str(source), variables(words, details))


def variables(words: Words, details: ReminderDetails) -> dict[str, Any]:
    when = details.appointment
    return {
        "business": details.business,
        "name": details.name,
        "first_name": details.name.split()[0] if details.name.split() else details.name,
        "callback_number": details.callback_number,
        "weekday": words.weekdays[when.weekday()],
        "month": words.months[when.month - 1],
        "day": when.day,
        "hour": when.hour,
        "hour12": when.hour % 12 or 12,
        "minute": f"{when.minute:02d}",
        "am_pm": "AM" if when.hour < 12 else "PM",
        "fields": details.fields,
    }


@lru_cache(maxsize=256)
def _template(source: str) -> Template:
    return _ENV.from_string(source)


def render(source: str, scope: Mapping[str, Any]) -> str:
    try:
        return " ".join(_template(source).render(scope).split())
    except TemplateError as exc:
        raise CampaignError(f"{exc}") from None


SAMPLE = ReminderDetails(
    name="Ana Example",
    appointment=datetime(2026, 12, 4, 15, 30),
    business="Sample Clinic",
    callback_number="+15005550006",
)


class _AnyFields(dict[str, str]):
    """A contact's extra columns while a script loads: whichever the words use (a contact
    lacking one is refused at import, where the columns are known)."""

    def __missing__(self, key: str) -> str:
        return key


def script_path(flows_dir: Path, name: str) -> Path:
    if not re.fullmatch(SCRIPT_NAME, name):
        raise CampaignError(f"reminder script {name!r}: a plain name such as {DEFAULT_SCRIPT}")
    return flows_dir / SCRIPTS_SUBDIR / f"{name}.yaml"


def load_script(path: Path) -> ReminderScript:
    """Read and check a script; problems name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CampaignError(f"{path}: cannot read the reminder script ({exc.strerror})") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise CampaignError(f"{path}:{line}: not valid YAML: {exc}") from None
    try:
        script = ReminderScript.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc, hint = err["loc"], ""
            if err["type"] == "invalid_key" and isinstance(err["input"], bool):
                loc, hint = (*loc[:-1], err["input"]), BOOLEAN_HINT  # the key YAML made a bool
            where = ".".join(map(str, loc)) or "file"
            problems.append(f"{path}:{_line(node, loc)}: {where}: {err['msg']}{hint}")
        raise CampaignError("\n".join(problems)) from None
    if script.name != path.stem:
        raise CampaignError(f"{path}:1: name {script.name!r} differs from the file's ({path.stem})")
    for language, words in script.languages.items():
        for part in _parts(words):
            try:
                script.say(language, part, replace(SAMPLE, fields=_AnyFields()))
            except CampaignError as exc:
                at = ("languages", language, *part.split("."))
                raise CampaignError(f"{path}:{_line(node, at)}: {'.'.join(at)}: {exc}") from None
    return script


def load_scripts(flows_dir: Path) -> dict[str, ReminderScript]:
    """Every script in ``flows_dir/reminders`` by name (none there: none)."""
    folder = flows_dir / SCRIPTS_SUBDIR
    paths = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
    return {path.stem: load_script(path) for path in paths}


def _parts(words: Words) -> list[str]:
    parts = [name for name, info in Words.model_fields.items() if info.annotation is str]
    return parts + [f"closing.{name}" for name in Closings.model_fields]


def _line(node: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """The 1-based line of the value at ``loc`` (or the nearest enclosing one)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            found = [(k, v) for k, v in node.value if _same_key(k, key)]
            if not found:
                break
            line, node = found[0][0].start_mark.line + 1, found[0][1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _same_key(node: yaml.Node, key: Any) -> bool:
    value = getattr(node, "value", None)
    if isinstance(key, bool) and isinstance(value, str):  # yes/no/on/off, as YAML 1.1 reads them
        return yaml.safe_load(value) is key
    return value == str(key)
