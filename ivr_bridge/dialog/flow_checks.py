"""Static checks of a flow's templates and voice: mistakes a caller would otherwise find.

A template runs only when a call reaches its step, with ``StrictUndefined``: a misspelt variable
(``{{ acount.balance }}``) or an ``env`` name the flow did not declare is a call that apologises
and hangs up, found by whoever takes the unlucky path first. Both are visible in the text, so
they are refused when the flow loads, with "did you mean". A ``voice:`` the speech server does
not have fails every call of the flow the same way; the caller passes the voice ids it knows
(this layer does not know which speech server the bridge speaks through).

Checks return ``(path inside the flow, message)``; the loader turns paths into ``file:line``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterator

from jinja2 import meta, nodes

from ivr_bridge.dialog.flow_model import (
    RESERVED_VARIABLES,
    BranchStep,
    Flow,
)
from ivr_bridge.dialog.flow_walk import assigned, templates
from ivr_bridge.dialog.templates import parse_expression, parse_template

Path_ = tuple[str | int, ...]
SECRET_ENV_NAMES = frozenset({"IVR_LLM_API_KEY", "IVR_SPEECH_API_KEYS"})
SECRET_ENV_SUFFIXES = ("_KEY", "_KEYS", "_TOKEN", "_SECRET", "_PASSWORD")
_ENV_NAME = re.compile(r"IVR_[A-Z0-9_]+")


def is_secret_env_name(name: str) -> bool:
    """API keys, tokens and passwords must never be readable by a flow's templates."""
    return name in SECRET_ENV_NAMES or name.endswith(SECRET_ENV_SUFFIXES)


def flow_variables(flow: Flow) -> set[str]:
    """Every name a template of this flow may read: the bridge's, the flow's ``variables:``,
    and every variable any step sets (a template after the step that sets it reads it)."""
    names = set(RESERVED_VARIABLES) | set(flow.variables)
    for step in flow.steps:
        names.update(name for _, name in assigned(step))
    return names


def check_templates(
    flow: Flow, voices: Collection[str] | None = None
) -> Iterator[tuple[Path_, str]]:
    """Unknown variables, undeclared ``env`` names and (given ``voices``) an unknown voice."""
    known = flow_variables(flow)
    for i, step in enumerate(flow.steps):
        sources = [(path, parse_template(text)) for path, text in templates(step)]
        if isinstance(step, BranchStep):
            sources += [
                (("branch", n, "when"), parse_expression(case.when))
                for n, case in enumerate(step.branch)
                if case.when is not None
            ]
        for path, tree in sources:
            if tree is None:  # a syntax error, reported by the loader
                continue
            # An ask-back question also reads the option's first phrase.
            extra = {"phrase"} if path[-1] == "confirm_prompt" else set()
            for message in _template_problems(tree, known | extra, flow.env):
                yield ("steps", i, *path), message
    if voices is not None and flow.voice is not None:
        problem = unknown_voice(flow.voice, voices)
        if problem:
            yield ("voice",), problem


def unknown_voice(voice: str, voices: Collection[str]) -> str | None:
    """Why ``voice`` cannot be used with a speech server that has ``voices`` (None: it can)."""
    by_lower = {v.lower(): v for v in voices}
    if voice.strip().lower() in by_lower:
        return None
    close = difflib.get_close_matches(voice.strip().lower(), list(by_lower), n=1)
    hint = f"did you mean {by_lower[close[0]]!r}? " if close else ""
    return f"unknown voice {voice!r}; {hint}(the speech server's voices: {', '.join(voices)})"


def _template_problems(tree: nodes.Template, known: set[str], env: Collection[str]) -> list[str]:
    problems = []
    for name in sorted(meta.find_undeclared_variables(tree) - known):
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        problems.append(
            f"unknown variable {name!r}{hint} (a template reads the bridge's "
            f"{', '.join(sorted(RESERVED_VARIABLES))}, the flow's variables: and what a step "
            "sets with into: or set:)"
        )
    for name in sorted(set(_env_names(tree)) - set(env)):
        if not _ENV_NAME.fullmatch(name) or is_secret_env_name(name):
            problems.append(
                f"env.{name} is never visible to templates: a flow reads only the IVR_* names "
                "it declares under env:, and no key, token or password"
            )
            continue
        close = difflib.get_close_matches(name, sorted(env), n=1)
        hint = f"did you mean {close[0]!r}, or " if close else ""
        problems.append(
            f"env.{name} is not declared: {hint}declare {name} under env: (with its default)"
        )
    return problems


def _env_names(tree: nodes.Template) -> Iterator[str]:
    """``NAME`` of every ``env.NAME``, ``env['NAME']`` and ``env.get('NAME')``."""
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Call)):
        if isinstance(node, nodes.Call):
            target = node.node
            if (
                isinstance(target, nodes.Getattr)
                and _is_env(target.node)
                and target.attr == "get"
                and node.args
                and isinstance(node.args[0], nodes.Const)
                and isinstance(node.args[0].value, str)
            ):
                yield node.args[0].value
        elif isinstance(node, nodes.Getattr) and _is_env(node.node):
            if node.attr != "get":  # env.get(...) is the call above
                yield node.attr
        elif (
            isinstance(node, nodes.Getitem)
            and _is_env(node.node)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            yield node.arg.value


def _is_env(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "env"
