"""LLM settings from the environment (``IVR_LLM_*``), with readable configuration errors.

Kept apart from ``ivr_bridge.config.Settings`` so a bridge that never runs an LLM step never
needs (or validates) any of this; the API key is a ``SecretStr`` and is never printed.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ivr_bridge.config import ConfigError

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_ANTHROPIC_BASE_URL = "https://api.anthropic.com"
PROVIDER_TIMEOUT_MARGIN_S = 0.5


class LLMSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IVR_LLM_", extra="ignore")

    provider: Literal["openai", "anthropic"] = "openai"
    """``openai`` covers every OpenAI-compatible server (OpenAI, Groq, vLLM, Ollama, llama.cpp)."""
    base_url: str | None = None
    """E.g. ``https://api.groq.com/openai/v1`` or ``http://127.0.0.1:11434/v1`` (Ollama)."""
    api_key: SecretStr | None = None
    model: str | None = None
    max_tokens: int = Field(default=300, ge=16, le=8192)
    temperature: float | None = Field(default=None, ge=0, le=2)
    connect_timeout_s: float = Field(default=3.0, gt=0, le=60)
    first_token_timeout_s: float = Field(default=8.0, gt=0, le=120)
    """Hard limit of a model round: no first token this long after the request → the fallback
    line. Never retried (the caller has heard fillers meanwhile; a re-sent request starts over).
    The provider's own first-token timeout is set a little longer
    (``provider_first_token_timeout_s``), so it never fires before the round gives up."""
    idle_timeout_s: float = Field(default=2.0, gt=0, le=120)
    """Longest silence between two stream events once the answer has started."""
    filler_after_ms: int = Field(default=800, ge=100, le=10_000)
    """No first token this long after the caller stopped talking (endpointing and speech-to-text
    count) → say the filler while still waiting; at once if that time has already passed."""
    max_dead_air_ms: int = Field(default=900, ge=100, le=10_000)
    """After the filler, the longest silence the caller hears while the model has not started:
    each time this much has passed since the last line ended, a hold line (``hold_texts``). The
    voice adds its start-up time (about 0.1 s) to what the caller hears."""
    hold_texts: tuple[str, ...] = Field(
        default=("Still checking.", "Thanks for waiting, nearly there."), min_length=1
    )
    """Said in turn (then from the start again) after the filler while the model is silent.
    From the environment as JSON: ``IVR_LLM_HOLD_TEXTS='["Still checking."]'``."""
    max_retries: int = Field(default=1, ge=0, le=5)
    """Re-sends of a failed request (a connection error, a 5xx), only while the caller has heard
    nothing for it (no filler yet); a first-token timeout is never re-sent."""
    retry_backoff_ms: int = Field(default=150, ge=0, le=5000)
    filler_text: str = "One moment."
    fallback_text: str = "Sorry, I'm having trouble right now. Could you say that again?"
    max_failed_turns: int = Field(default=3, ge=1, le=20)
    """Consecutive failed turns before the dialog apologises and ends the call."""
    max_tool_rounds: int = Field(default=4, ge=1, le=20)
    """Model → tool → model round trips allowed within one caller turn."""

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL such as https://api.openai.com/v1")
        return value.rstrip("/")

    @property
    def provider_first_token_timeout_s(self) -> float:
        """The provider's own first-token limit: the round's plus a margin, so the round's
        fallback (and its ``llm_error`` event) always comes first."""
        return self.first_token_timeout_s + PROVIDER_TIMEOUT_MARGIN_S

    @property
    def effective_base_url(self) -> str:
        if self.base_url:
            return self.base_url
        return (
            DEFAULT_ANTHROPIC_BASE_URL if self.provider == "anthropic" else DEFAULT_OPENAI_BASE_URL
        )


def load_llm_settings(**overrides: object) -> LLMSettings:
    """Read ``IVR_LLM_*`` and check the combination, raising one readable ``ConfigError``."""
    try:
        settings = LLMSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = f"IVR_LLM_{str(err['loc'][0]).upper()}" if err["loc"] else "IVR_LLM_?"
            shown = err.get("input")
            value = "" if "api_key" in name or shown is None else f" (got {shown!r})"
            lines.append(f"{name}{value}: {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError("invalid LLM configuration:\n  " + "\n  ".join(lines)) from None
    problems = []
    if not settings.model:
        problems.append("IVR_LLM_MODEL: not set; name the model, e.g. gpt-4o-mini or llama3.1")
    if settings.api_key is None and settings.base_url is None:
        problems.append(
            "IVR_LLM_API_KEY: not set; give the vendor's key, or point IVR_LLM_BASE_URL at a "
            "local server (Ollama, llama.cpp, vLLM) that needs none"
        )
    if problems:
        raise ConfigError("invalid LLM configuration:\n  " + "\n  ".join(problems))
    return settings
