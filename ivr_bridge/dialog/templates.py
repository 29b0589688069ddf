"""Flow templates: Jinja2, sandboxed, strict.

Flow files are configuration that non-programmers edit and that may render caller-supplied values
(custom parameters, HTTP results), so templates run in Jinja's sandbox, and a missing variable is
an error (``StrictUndefined``) instead of silently speaking an empty string to a caller. Syntax is
checked when the flow loads; values only exist at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache, wraps
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, Undefined, nodes
from jinja2.environment import Template
from jinja2.sandbox import SandboxedEnvironment

from ivr_bridge.dialog.say_as import FILTERS
from ivr_bridge.errors import DialogError


def _say_as_filter(function: Callable[..., str]) -> Callable[..., str]:
    """A missing variable piped into a say-as filter is reported as missing, not as a value of
    the wrong kind (``StrictUndefined`` raises when it is turned into text)."""

    @wraps(function)
    def say_as(value: Any, *args: Any, **kwargs: Any) -> str:
        if isinstance(value, Undefined):
            return str(value)  # raises UndefinedError: "'balance' is undefined"
        return function(value, *args, **kwargs)

    return say_as


_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_ENV.filters.update({name: _say_as_filter(f) for name, f in FILTERS.items()})


class TemplateRuntimeError(DialogError):
    """A template or expression failed while the call ran (missing variable, bad filter...)."""


def template_syntax_error(source: str) -> str | None:
    """Why ``source`` is not a valid template, or None when it is."""
    try:
        _template(source)
    except TemplateSyntaxError as exc:
        return f"bad template: {exc.message} (template line {exc.lineno})"
    return None


def expression_syntax_error(source: str) -> str | None:
    """Why ``source`` is not a valid Jinja expression (``branch.when``), or None."""
    try:
        _expression(source)
    except TemplateSyntaxError as exc:
        return f"bad expression: {exc.message}"
    return None


def parse_template(source: str) -> nodes.Template | None:
    """The syntax tree of a template, for static checks (None: not valid, reported elsewhere)."""
    try:
        return _ENV.parse(source)
    except TemplateSyntaxError:
        return None


def parse_expression(source: str) -> nodes.Template | None:
    """The syntax tree of an expression (``branch.when``), as the tree of ``{{ (source) }}``."""
    if expression_syntax_error(source):
        return None
    return parse_template("{{ (" + source + ") }}")


@lru_cache(maxsize=1024)
def _template(source: str) -> Template:
    return _ENV.from_string(source)


@lru_cache(maxsize=1024)
def _expression(source: str) -> Any:
    return _ENV.compile_expression(source, undefined_to_none=False)


def render(source: str, scope: Mapping[str, Any]) -> str:
    """Render a template against the call's variables."""
    try:
        return _template(source).render(scope)
    except TemplateError as exc:
        raise TemplateRuntimeError(f"template {source!r}: {exc}") from None
    except (TypeError, ValueError, ArithmeticError) as exc:  # {{ a / b }} with b = 0
        raise TemplateRuntimeError(f"template {source!r}: {exc}") from None


def render_value(value: Any, scope: Mapping[str, Any]) -> Any:
    """Render every string inside a YAML value (an HTTP JSON body, a header map)."""
    if isinstance(value, str):
        return render(value, scope)
    if isinstance(value, dict):
        return {k: render_value(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, scope) for v in value]
    return value


def evaluate(source: str, scope: Mapping[str, Any]) -> Any:
    """Evaluate a Jinja expression (``balance > 100``) against the call's variables."""
    try:
        result = _expression(source)(**scope)
    except TemplateError as exc:
        raise TemplateRuntimeError(f"expression {source!r}: {exc}") from None
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise TemplateRuntimeError(f"expression {source!r}: {exc}") from None
    if isinstance(result, StrictUndefined):
        raise TemplateRuntimeError(f"expression {source!r}: undefined value")
    return result


def strings_in(value: Any) -> list[str]:
    """Every string in a nested YAML value, for load-time syntax checks."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []
