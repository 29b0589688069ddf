"""Build the configured provider from ``LLMSettings`` (the only place that reads the API key)."""

from __future__ import annotations

from ivr_bridge.config import ConfigError
from ivr_bridge.llm.provider import LLMProvider
from ivr_bridge.llm.settings import LLMSettings


def make_provider(settings: LLMSettings) -> LLMProvider:
    """The provider ``IVR_LLM_PROVIDER`` names; ``ConfigError`` if it cannot be built here."""
    if not settings.model:
        raise ConfigError("IVR_LLM_MODEL: not set; name the model, e.g. gpt-4o-mini")
    key = settings.api_key.get_secret_value() if settings.api_key else None
    if settings.provider == "anthropic":
        try:
            from ivr_bridge.llm.anthropic_provider import AnthropicProvider
        except ImportError:
            raise ConfigError(
                "IVR_LLM_PROVIDER=anthropic needs the anthropic SDK: pip install anthropic"
            ) from None
        if key is None and settings.base_url is None:
            raise ConfigError("IVR_LLM_API_KEY: Anthropic needs an API key")
        return AnthropicProvider(
            model=settings.model,
            api_key=key,
            base_url=settings.base_url,
            connect_timeout_s=settings.connect_timeout_s,
            first_token_timeout_s=settings.first_token_timeout_s,
            idle_timeout_s=settings.idle_timeout_s,
        )
    from ivr_bridge.llm.openai_compat import OpenAICompatibleProvider

    return OpenAICompatibleProvider(
        base_url=settings.effective_base_url,
        model=settings.model,
        api_key=key,
        connect_timeout_s=settings.connect_timeout_s,
        first_token_timeout_s=settings.first_token_timeout_s,
        idle_timeout_s=settings.idle_timeout_s,
    )
