"""One rule names a model's provider, for the engine's calls and the importer's rows alike."""

from __future__ import annotations

from cascadeflow_cli.config import ModelConfig
from cascadeflow_cli.engine.pricing import infer_provider as engine_provider
from cascadeflow_cli.ledger.importer import infer_provider as import_provider
from cascadeflow_cli.model_map import infer_provider


def test_an_unmapped_claude_is_anthropic_for_the_engine_and_the_importer() -> None:
    name = "claude-not-in-any-price-map-9"
    assert import_provider(name) == "anthropic"
    assert engine_provider(ModelConfig("c", name)) == "anthropic"
    assert engine_provider(ModelConfig("c", name, api_base="http://127.0.0.1:9/v1")) == "anthropic"


def test_prefix_map_endpoint_and_unknown() -> None:
    assert infer_provider("anthropic/claude-3-opus") == "anthropic"
    assert infer_provider("gpt-4o-mini") == "openai"  # litellm's map
    assert infer_provider("my-local-llm", "http://127.0.0.1:9/v1") == "openai"  # OpenAI-compatible
    assert infer_provider("my-local-llm") == "unknown"
    assert engine_provider(ModelConfig("x", "openai/my-local-llm")) == "openai"
