"""A menu as it listens: its own options plus the flow's commands, and the load-time rules.

A command is merged into every gather with options as one more option under a name no flow
option can have (``command:agent``), so digits, speech, grammars, confidence and events treat it
exactly like an option and nothing downstream needs a second code path.

Precedence: a menu's own option wins over a command with the same phrase, because the menu
author chose it for this question ("menu" in "anything else? say menu" is an option there, not
the global "repeat"). Keys are different: a key is unambiguous and callers learn "0 is a person"
once, so a command key that a menu also uses (or that is a prefix of one of its keys, which
would make the caller wait for a finish key) is reported at load time instead of silently
meaning two things. Digit entries (gathers without options) take no commands: every key there
is part of the number.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ivr_bridge.dialog.commands import FlowCommand
from ivr_bridge.dialog.flow_model import Flow, GatherOption, GatherSpec, GatherStep
from ivr_bridge.dialog.templates import template_syntax_error
from ivr_bridge.recognition.text import normalize_phrase

COMMAND_PREFIX = "command:"
Path_ = tuple[str | int, ...]


def command_option(name: str) -> str:
    """The option name a command has inside a merged menu."""
    return COMMAND_PREFIX + name


def command_name(value: str | None) -> str | None:
    """The command a merged menu's answer names, or None for one of the menu's own options."""
    if value is not None and value.startswith(COMMAND_PREFIX):
        return value.removeprefix(COMMAND_PREFIX)
    return None


def keys_clash(a: str, b: str) -> bool:
    """Two keys clash when one is the other or begins it (the shorter could never end early)."""
    return a.startswith(b) or b.startswith(a)


def with_commands(spec: GatherSpec, commands: Mapping[str, FlowCommand]) -> GatherSpec:
    """``spec`` with every command's phrases and keys its own options do not already use."""
    if not commands or not spec.options:
        return spec
    own_phrases = {normalize_phrase(p) for o in spec.options.values() for p in o.phrases}
    own_keys = [o.digits for o in spec.options.values() if o.digits]
    options = dict(spec.options)
    for name, command in commands.items():
        phrases = [p for p in command.phrases if normalize_phrase(p) not in own_phrases]
        digits = command.digits
        if digits is not None and any(keys_clash(digits, key) for key in own_keys):
            digits = None  # reported at load time; never two meanings at run time
        if phrases or digits:
            options[command_option(name)] = GatherOption(digits=digits, phrases=phrases)
    # model_copy does not validate: the command names stay out of the flow's option namespace.
    return spec.model_copy(update={"options": options})


def command_problems(flow: Flow) -> Iterator[tuple[Path_, str]]:
    """Problems of a flow's ``commands`` (as data paths and messages, located by the loader).

    Unknown ``goto`` targets are reported by the loader with its other targets."""
    commands = flow.commands
    for name, command in commands.items():
        if command.help is not None:
            error = template_syntax_error(command.help)
            if error:
                yield ("commands", name, "help"), error
    keyed = [(name, c.digits) for name, c in commands.items() if c.digits is not None]
    for n, (name, key) in enumerate(keyed):
        for other, other_key in keyed[:n]:
            if keys_clash(key, other_key):
                yield (
                    ("commands", name, "digits"),
                    f"key {key!r} clashes with command {other!r}'s key {other_key!r}; "
                    "give one of them another key",
                )
    if not keyed:
        return
    for i, step in enumerate(flow.steps):
        if not isinstance(step, GatherStep):
            continue
        for option_name, option in step.gather.options.items():
            for name, key in keyed:
                if option.digits is not None and keys_clash(option.digits, key):
                    yield (
                        ("steps", i, "gather", "options", option_name, "digits"),
                        f"key {option.digits!r} clashes with the flow command {name!r} "
                        f"(commands.{name}.digits: {key!r}), which every menu understands; "
                        "give the option another key, or drop the option and let the command "
                        "answer",
                    )


def command_targets(flow: Flow) -> Iterator[tuple[Path_, str]]:
    for name, command in flow.commands.items():
        if command.goto is not None:
            yield ("commands", name, "goto"), command.goto
