"""Flow-wide commands: words (and keys) a caller may use at any menu of a flow.

Callers do not learn each menu: "agent", "operator", "repeat that" or 0 for a person are said
anywhere, and a menu that does not list them should still understand them instead of answering
"sorry, I didn't get that". A flow declares them once, under ``commands:``; every gather with
options then listens for them besides its own (see ``menu.py`` for how they are merged, and why a
menu's own option wins). Only the shape lives here, so the schema module stays about steps.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DIGITS = r"^[0-9*#]+$"


class FlowCommand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    phrases: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    """Spoken forms (``[agent, operator, a person]``)."""
    digits: str | None = Field(default=None, pattern=DIGITS)
    """Keys that give the command at any menu (``"0"``); never in a digit entry, where every
    key is part of the number."""
    goto: str | None = None
    """Step id to continue with."""
    repeat: bool = False
    """Say the current menu's prompt again and keep listening."""
    help: str | None = Field(default=None, min_length=1)
    """Template said, followed by the current menu's prompt; then keep listening."""

    @field_validator("digits", mode="before")
    @classmethod
    def _digits_as_text(cls, value: Any) -> Any:
        """``digits: 0`` (a YAML number) means the key 0."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _one_action(self) -> FlowCommand:
        actions = [self.goto is not None, self.repeat, self.help is not None]
        if sum(actions) != 1:
            raise ValueError("a command does exactly one of 'goto: STEP', 'repeat: true', 'help'")
        if not self.phrases and self.digits is None:
            raise ValueError("a command needs 'phrases' or 'digits' to be recognised by")
        return self
