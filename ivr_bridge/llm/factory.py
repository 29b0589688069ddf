"""Build the configured provider from ``LLMSettings`` (the only place that reads the API key)."""

from __future__ import annotations

import importlib.util

from ivr_bridge.config import ConfigError
from ivr_bridge.llm.provider import LLMProvider
from ivr_bridge.llm.settings import LLMSettings


def check_provider_config(settings: LLMSettings) -> str:
    """The model name, or ``ConfigError`` (naming the variable) when ``make_provider`` would
    fail; builds nothing, so the server can check at startup."""
    if not settings.model:
        raise ConfigError("IVR_LLM_MODEL: not set; name the model, e.g. gpt-4o-mini")
    if settings.provider == "anthropic":
        if importlib.util.find_spec("anthropic") is None:
            raise ConfigError(
                "IVR_LLM_PROVIDER=anthropic needs the anthropic SDK: pip install anthropic"
            )
        if settings.api_key is None and settings.base_url is None:
            raise ConfigError("IVR_LLM_API_KEY: Anthropic needs an API key")
    return settings.model


def make_provider(settings: LLMSettings) -> LLMProvider:
    """The provider ``IVR_LLM_PROVIDER`` names; ``ConfigError`` if it cannot be built here."""
    model = check_provider_config(settings)
    key = settings.api_key.get_secret_value() if settings.api_key else None
    if settings.provider == "anthropic":
        try:
            from ivr_bridge.llm.anthropic_provider import AnthropicProvider
        except ImportError:
            raise ConfigError(
                "IVR_LLM_PROVIDER=anthropic needs the anthropic SDK: pip install anthropic"
            ) from None
        return AnthropicProvider(
            model=model,
            api_key=key,
            base_url=settings.base_url,
            connect_timeout_s=settings.connect_timeout_s,
            first_token_timeout_s=settings.provider_first_token_timeout_s,
            idle_timeout_s=settings.idle_timeout_s,
        )
    from ivr_bridge.llm.openai_compat import OpenAICompatibleProvider

    return OpenAICompatibleProvider(
        base_url=settings.effective_base_url,
        model=model,
        api_key=key,
        connect_timeout_s=settings.connect_timeout_s,
        first_token_timeout_s=settings.provider_first_token_timeout_s,
        idle_timeout_s=settings.idle_timeout_s,
    )
