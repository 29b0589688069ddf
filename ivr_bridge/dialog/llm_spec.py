"""The ``llm`` flow step's schema: hand the call to a language model, with tools and limits.

Shapes only (strict, unknown fields are errors); the loader checks step ids and template syntax,
``llm_step`` runs it. String fields marked *template* are rendered with the call's variables when
the step starts, so prompts, numbers and tool URLs can come from ``env``/``params``/earlier steps.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

BargeInName = Literal["any", "speech", "dtmf", "none"]
NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
TOOL_NAME = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
"""What both OpenAI and Anthropic accept as a function name."""
BUILT_IN_TOOLS = frozenset({"transfer_call", "end_call", "goto_step"})

UNAVAILABLE_SAY = (
    "Sorry, our assistant isn't available right now. Please call again later. Goodbye."
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LlmTool(_Model):
    """An HTTP backend the model may call: its arguments go out as JSON (query for GET)."""

    name: str = Field(pattern=TOOL_NAME)
    description: str = Field(min_length=1)
    """Tells the model when to use it; write it for the model, like a docstring."""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    """JSON schema of the arguments (an ``object`` schema)."""
    url: str = Field(min_length=1)
    """Template (``{{ env.IVR_ORDER_URL }}``)."""
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    """Templates; read secrets from ``env`` rather than writing them here."""
    timeout_ms: int = Field(default=3000, ge=100, le=30_000)

    @field_validator("parameters")
    @classmethod
    def _object_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type") != "object":
            raise ValueError("parameters is a JSON schema with 'type: object' (and 'properties')")
        if not isinstance(value.get("properties", {}), dict):
            raise ValueError("parameters.properties maps argument names to their schemas")
        return value


class LlmSpec(_Model):
    system_prompt: str | None = None
    """Template: who the model is and what it may do (default: a generic phone agent). The
    phone-speech rules are added unless ``phone_style: false``."""
    context: dict[Annotated[str, Field(pattern=NAME)], str] = Field(default_factory=dict)
    """Facts about the call for the model (name → template): ``caller: "{{ caller }}"``."""
    phone_style: bool = True
    greeting: str | None = None
    """Template said first; omitted: the model waits for the caller to speak."""
    barge_in: BargeInName | None = None
    """Who may interrupt the model's answers (default: the bridge's policy)."""
    transfer_to: str | None = None
    """Template: the number ``transfer_call`` dials (no transfer tool when neither this nor
    ``transfer_allowed`` is set)."""
    transfer_allowed: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    """Templates: other numbers the model may name."""
    goto: list[str] = Field(default_factory=list)
    """Step ids the model may hand the call back to (``goto_step``)."""
    end_call: bool = True
    """Offer ``end_call`` (hang up after saying goodbye)."""
    tools: list[LlmTool] = Field(default_factory=list)
    max_turns: int = Field(default=30, ge=1, le=500)
    """Caller turns before the dialog says goodbye and hangs up (a runaway-call guard)."""
    no_input_timeout_ms: int = Field(default=8000, ge=1000, le=60_000)
    max_no_input: int = Field(default=2, ge=0, le=10)
    reprompt: str = Field(default="Are you still there?", min_length=1)
    goodbye: str = Field(default="Thanks for calling. Goodbye.", min_length=1)
    unavailable_say: str = Field(default=UNAVAILABLE_SAY, min_length=1)
    """Template said (then the call ends) when the LLM or the recogniser is not configured."""
    on_unavailable: str | None = None
    """Step id to continue with instead when the LLM is not configured (e.g. a transfer)."""

    @model_validator(mode="after")
    def _tool_names(self) -> LlmSpec:
        names = [tool.name for tool in self.tools]
        clash = sorted(set(names) & BUILT_IN_TOOLS)
        if clash:
            raise ValueError(f"tool name {clash[0]!r} is built in; choose another name")
        if len(names) != len(set(names)):
            raise ValueError("two tools have the same name")
        return self

    def targets(self) -> list[tuple[tuple[str | int, ...], str]]:
        """(path inside the step, step id) for the loader's target check."""
        found: list[tuple[tuple[str | int, ...], str]] = [
            (("llm", "goto", n), target) for n, target in enumerate(self.goto)
        ]
        if self.on_unavailable is not None:
            found.append((("llm", "on_unavailable"), self.on_unavailable))
        return found

    def templates(self) -> list[tuple[tuple[str | int, ...], str]]:
        """(path inside the step, template) for the loader's syntax check."""
        found: list[tuple[tuple[str | int, ...], str]] = []
        for name in ("system_prompt", "greeting", "transfer_to", "unavailable_say"):
            text = getattr(self, name)
            if text is not None:
                found.append((("llm", name), text))
        found.extend((("llm", "context", k), v) for k, v in self.context.items())
        found.extend(
            (("llm", "transfer_allowed", n), v) for n, v in enumerate(self.transfer_allowed)
        )
        for n, tool in enumerate(self.tools):
            found.append((("llm", "tools", n, "url"), tool.url))
            found.extend((("llm", "tools", n, "headers", k), v) for k, v in tool.headers.items())
        return found
