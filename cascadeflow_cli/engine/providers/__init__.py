"""Which client serves a model: our fast OpenAI-compatible client where the wire format
allows it, litellm for everything else (``client = "litellm"`` forces it)."""

from __future__ import annotations

from functools import lru_cache

from cascadeflow_cli.config import ModelConfig
from cascadeflow_cli.engine.pricing import find_map_entry
from cascadeflow_cli.engine.providers.base import ChatRequest, Completion, Provider, api_key, complete
from cascadeflow_cli.errors import PricingError

__all__ = [
    "ChatRequest",
    "Completion",
    "Provider",
    "check_credentials",
    "complete",
    "provider_for",
    "uses_fast_path",
]


@lru_cache(maxsize=256)  # pure of the (frozen) config and the bundled map; asked 3x a call
def uses_fast_path(model: ModelConfig) -> bool:
    from cascadeflow_cli.engine.providers.openai_compat import OPENAI_COMPATIBLE_PROVIDERS

    if model.client != "auto":
        return model.client == "openai"
    prefix = model.provider_prefix
    if prefix is None:
        try:
            entry = find_map_entry(model.model)
        except PricingError:
            entry = None
        prefix = entry[1].get("litellm_provider") if entry else ("openai" if model.api_base else None)
    if prefix == "openai":
        return True
    return prefix in OPENAI_COMPATIBLE_PROVIDERS and model.api_base is not None


@lru_cache(maxsize=2)
def _provider(fast: bool) -> Provider:
    if fast:
        from cascadeflow_cli.engine.providers.openai_compat import OpenAICompatProvider

        return OpenAICompatProvider()
    from cascadeflow_cli.engine.providers.litellm_provider import LiteLLMProvider

    return LiteLLMProvider()


def provider_for(model: ModelConfig) -> Provider:
    return _provider(uses_fast_path(model))


def check_credentials(model: ModelConfig) -> None:
    """Raise MissingApiKeyError now, before anything is reserved or recorded, when a key
    we can check without importing litellm is missing (litellm checks its own at call)."""
    if uses_fast_path(model):
        api_key(model, None if model.api_base else "OPENAI_API_KEY")
    elif model.api_key_env:
        api_key(model)
