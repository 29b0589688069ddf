"""Loading flow files: YAML with line numbers, schema validation, cross-step checks.

Flow files are edited by hand, so every problem is reported as ``file:line: where: what (fix)``,
all of them at once (the template and voice checks live in ``flow_checks``). Lines come from a
SafeLoader subclass that records where each mapping and key starts; pydantic's error locations
are walked back through the data to the nearest line.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ivr_bridge.dialog.flow_checks import check_templates, is_secret_env_name
from ivr_bridge.dialog.flow_model import (
    RESERVED_VARIABLES,
    STEP_KINDS,
    BranchStep,
    Flow,
    GatherStep,
    SayStep,
)
from ivr_bridge.dialog.flow_walk import assigned, targets, templates
from ivr_bridge.dialog.menu import command_problems, command_targets, with_commands
from ivr_bridge.dialog.prompt_audio import load_prompt_audio
from ivr_bridge.dialog.templates import expression_syntax_error, template_syntax_error
from ivr_bridge.errors import DialogError
from ivr_bridge.recognition.grammar import build_jsgf
from ivr_bridge.recognition.models import GrammarChoice, GrammarError

_LINE = "__line__"
_MISSING = object()
_KEY_LINES = "__key_lines__"
Path_ = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class FlowProblem:
    source: str
    line: int
    where: str
    message: str

    def __str__(self) -> str:
        where = f" {self.where}:" if self.where else ""
        return f"{self.source}:{self.line}:{where} {self.message}"


class FlowError(DialogError):
    """A flow cannot be used; ``str()`` lists every problem as ``file:line: where: what``."""

    def __init__(self, message: str, problems: Iterable[FlowProblem] = ()) -> None:
        self.problems = list(problems)
        super().__init__("\n".join([m for m in (message,) if m] + [str(p) for p in self.problems]))


class _LineLoader(yaml.SafeLoader):
    """Records the 1-based line of every mapping and of each of its keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping = super().construct_mapping(node, deep=deep)
        mapping[_LINE] = node.start_mark.line + 1
        mapping[_KEY_LINES] = {
            key.value: key.start_mark.line + 1 for key, _ in node.value if hasattr(key, "value")
        }
        return mapping


def _strip(value: Any, path: Path_, lines: dict[Path_, int], line: int) -> Any:
    """Remove the line markers, remembering them by data path."""
    if isinstance(value, dict):
        here = value.get(_LINE, line)
        key_lines = value.get(_KEY_LINES, {})
        lines.setdefault(path, here)
        out = {}
        for key, item in value.items():
            if key in (_LINE, _KEY_LINES):
                continue
            lines[(*path, key)] = key_lines.get(key, here)
            out[key] = _strip(item, (*path, key), lines, key_lines.get(key, here))
        return out
    if isinstance(value, list):
        lines.setdefault(path, line)
        return [_strip(item, (*path, i), lines, line) for i, item in enumerate(value)]
    return value


class _Located:
    """Maps data paths (and pydantic error locations) to lines and readable names."""

    def __init__(self, source: str, data: Any, lines: dict[Path_, int]) -> None:
        self.source = source
        self.data = data
        self.lines = lines

    def resolve(self, loc: Iterable[str | int]) -> Path_:
        """The longest part of ``loc`` that exists in the data.

        pydantic puts union tags and model names into locations (``steps.0.say.next``) and a
        tag can equal a key of the step itself, so each part may be taken or skipped."""
        parts = list(loc)

        def walk(node: Any, i: int) -> Path_:
            if i == len(parts):
                return ()
            part = parts[i]
            best = walk(node, i + 1)  # skip this part
            child: Any = _MISSING
            if isinstance(node, dict) and part in node:
                child = node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                child = node[part]
            if child is not _MISSING:
                taken = (part, *walk(child, i + 1))
                if len(taken) > len(best):  # on a tie, later parts matched are more precise
                    best = taken
            return best

        return walk(self.data, 0)

    def line(self, path: Path_) -> int:
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 1

    def problem(self, path: Path_, message: str) -> FlowProblem:
        return FlowProblem(self.source, self.line(path), _describe(path, self.data), message)


def _describe(path: Path_, data: Any) -> str:
    parts: list[str] = []
    node = data
    for part in path:
        if isinstance(part, int):
            label = f"[{part}]"
            node = node[part] if isinstance(node, list) else None
            if isinstance(node, dict) and isinstance(node.get("id"), str):
                label = f"[{part}] ({node['id']})"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(part))
            node = node.get(part) if isinstance(node, dict) else None
    return "".join(parts)


def _pydantic_message(error: Any) -> str:
    kind, msg, loc = error["type"], error["msg"], error["loc"]
    field = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        return f"unknown field {field!r}: remove it or check its spelling"
    if kind == "missing":
        return f"missing required field {field!r}"
    if kind == "string_type" and isinstance(error.get("input"), bool):
        return f"{msg}: YAML reads yes/no/on/off as true/false; put the word in quotes"
    return msg.removeprefix("Value error, ")


def parse_flow(
    text: str,
    source: str = "<flow>",
    base_dir: Path | None = None,
    voices: Collection[str] | None = None,
) -> Flow:
    """Validate a flow document; ``base_dir`` is where ``audio`` files are looked up; ``voices``
    (when known) the voice ids of the speech server the flow will speak through."""
    try:
        raw = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise FlowError("", [FlowProblem(source, line, "", f"not valid YAML: {problem}")]) from None
    lines: dict[Path_, int] = {}
    data = _strip(raw, (), lines, 1)
    located = _Located(source, data, lines)
    if not isinstance(data, dict):
        raise FlowError("", [located.problem((), "a flow is a mapping with 'name' and 'steps'")])
    try:
        flow = Flow.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = located.resolve(err["loc"])
            problem = located.problem(path, _pydantic_message(err))
            field = err["loc"][-1] if err["loc"] else None
            if err["type"] == "missing" and isinstance(field, str):
                where = f"{problem.where}.{field}" if problem.where else field
                problem = FlowProblem(problem.source, problem.line, where, problem.message)
            problems.append(problem)
        raise FlowError("", problems) from None
    problems = list(_check(flow, located))
    problems += [located.problem(path, msg) for path, msg in check_templates(flow, voices)]
    audio: dict[str, bytes] = {}
    for i, step in enumerate(flow.steps):
        if isinstance(step, SayStep) and step.audio is not None:
            try:
                audio[step.audio] = load_prompt_audio(base_dir, step.audio)
            except ValueError as exc:
                problems.append(located.problem(("steps", i, "audio"), str(exc)))
    if problems:
        raise FlowError("", sorted(problems, key=lambda p: p.line))
    flow.set_audio(audio)
    return flow


def _check(flow: Flow, at: _Located) -> Iterator[FlowProblem]:
    """Cross-step rules the schema cannot express."""
    ids: dict[str, int] = {}
    for i, step in enumerate(flow.steps):
        if step.id is not None:
            if step.id in ids:
                yield at.problem(
                    ("steps", i, "id"),
                    f"step id {step.id!r} is also used by step {ids[step.id] + 1}; ids are unique",
                )
            ids.setdefault(step.id, i)
    for i, step in enumerate(flow.steps):
        base: Path_ = ("steps", i)
        for path, target in targets(step):
            if target not in ids:
                yield at.problem((*base, *path), _unknown_target(target, ids))
        for path, source in templates(step):
            error = template_syntax_error(source)
            if error:
                yield at.problem((*base, *path), error)
        if isinstance(step, BranchStep):
            for n, case in enumerate(step.branch):
                error = case.when and expression_syntax_error(case.when)
                if error:
                    yield at.problem((*base, "branch", n, "when"), error)
        for path, name in assigned(step):
            if name in RESERVED_VARIABLES:
                yield at.problem(
                    (*base, *path),
                    f"{name!r} is set by the bridge for every call and cannot be assigned; "
                    "choose another variable name",
                )
        if isinstance(step, GatherStep) and step.gather.listens_for_speech:
            error = _grammar_error(step, flow)
            if error:
                yield at.problem((*base, "gather", "options"), error)
        if isinstance(step, GatherStep) and step.gather.into is None and step.id is None:
            yield at.problem(
                (*base, "gather"), "a gather needs 'into' (the variable for its result) or an 'id'"
            )
    for path, target in command_targets(flow):
        if target not in ids:
            yield at.problem(path, _unknown_target(target, ids))
    for path, message in command_problems(flow):
        yield at.problem(path, message)
    for name in flow.variables:
        if name in RESERVED_VARIABLES:
            yield at.problem(("variables", name), f"{name!r} is reserved; choose another name")
    for name in flow.env:
        if is_secret_env_name(name):
            yield at.problem(
                ("env", name),
                f"{name} holds a secret and templates could speak or send it; remove it from "
                "env (the bridge uses its keys itself; pass other values under a non-secret name)",
            )


def _grammar_error(step: GatherStep, flow: Flow) -> str | None:
    """The spoken options (and commands) must compile to a grammar (no phrase in two)."""
    menu = with_commands(step.gather, flow.commands)
    choices = [
        GrammarChoice(name, tuple(option.phrases))
        for name, option in menu.options.items()
        if option.phrases
    ]
    try:
        build_jsgf(choices)
    except GrammarError as exc:
        return f"spoken options cannot be recognised: {exc}"
    return None


def _unknown_target(target: str, ids: dict[str, int]) -> str:
    close = difflib.get_close_matches(target, list(ids), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    known = ", ".join(ids) or "none: give the target step an 'id'"
    return f"no step has id {target!r}; {hint}(step ids: {known})"


def load_flow(path: Path, voices: Collection[str] | None = None) -> Flow:
    """Read and validate one flow file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FlowError(f"{path}: cannot read flow file: {exc.strerror}") from None
    return parse_flow(text, str(path), path.parent, voices)


FLOW_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.ya?ml")
"""A flow a request may name: a plain file name (no directories, no control characters)."""


def resolve_flow_path(flows_dir: Path, name: str) -> Path:
    """A flow named by a caller must be a plain ``.yaml`` file name inside the flows directory
    (a NUL byte or a 300-byte name is a polite refusal, not an error of the file system)."""
    if not FLOW_NAME.fullmatch(name):
        shown = name if len(name) <= 60 else name[:60] + "…"
        raise FlowError(f"flow {shown!r} is not a .yaml file name inside {flows_dir}")
    base = flows_dir.resolve()
    try:
        path = (base / name).resolve()
    except (OSError, ValueError) as exc:
        raise FlowError(f"flow {name!r} cannot be used: {exc}") from None
    if base not in path.parents:
        raise FlowError(f"flow {name!r} is not a .yaml file inside {flows_dir}")
    return path


def load_flows_dir(
    flows_dir: Path, default: str, voices: Collection[str] | None = None
) -> dict[str, Flow]:
    """Every flow in the directory, by file name; all problems of all files in one error."""
    flows: dict[str, Flow] = {}
    problems: list[FlowProblem] = []
    messages: list[str] = []
    default_path = resolve_flow_path(flows_dir, default)
    if not default_path.is_file():
        raise FlowError(f"{default_path}: the default flow (IVR_FLOW={default}) does not exist")
    paths = sorted({*flows_dir.glob("*.yaml"), *flows_dir.glob("*.yml")})
    for path in paths:
        try:
            flows[path.name] = load_flow(path, voices)
        except FlowError as exc:
            problems.extend(exc.problems)
            if not exc.problems:
                messages.append(str(exc))
    if problems or messages:
        raise FlowError("\n".join(messages), problems)
    return flows


__all__ = [
    "STEP_KINDS",
    "FlowError",
    "FlowProblem",
    "load_flow",
    "load_flows_dir",
    "parse_flow",
    "resolve_flow_path",
]
