"""Prices per model: the config's override, else litellm's bundled price map.

The map is read as JSON straight from litellm's installed package files (model_map.py),
so pricing never pays the seconds it takes to import litellm, and never fetches a remote map.
A model with no known price is an error when it is used: counting it as $0 is the
failure we exist to prevent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cascadeflow_cli.config import ModelConfig
from cascadeflow_cli.errors import PricingError
from cascadeflow_cli.model_map import (  # noqa: F401  (their old home; re-exported)
    PRICE_MAP_FILE,
    find_map_entry,
    load_price_map,
    price_map_path,
)
from cascadeflow_cli.model_map import infer_provider as provider_of
from cascadeflow_cli.money import MAX_AMOUNT_USD, NANOS_PER_USD, token_cost_nanos

_MILLION = Decimal(10**6)


@dataclass(frozen=True)
class Price:
    """USD per million tokens, and where the figures came from."""

    input_per_million: Decimal
    output_per_million: Decimal
    cached_input_per_million: Decimal | None = None
    reasoning_per_million: Decimal | None = None
    source: str = "config"  # "config" or "litellm" (the bundled map)
    map_key: str | None = None
    max_output_tokens: int | None = None


@dataclass(frozen=True)
class Usage:
    """Token counts as a provider reports them. Cached tokens are part of
    ``input_tokens`` and reasoning tokens part of ``output_tokens`` (OpenAI's convention)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0


def infer_provider(model: ModelConfig) -> str:
    """The provider name recorded in the ledger (the one rule: model_map.infer_provider)."""
    return provider_of(model.model, model.api_base)


def _per_million(entry: dict[str, Any], key: str) -> Decimal | None:
    value = entry.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        return None
    return Decimal(str(value)) * _MILLION


def lookup_price(
    model: ModelConfig,
    price_map: dict[str, dict[str, Any]] | None = None,
    fallback: tuple[Decimal, Decimal] | None = None,
) -> Price:
    """The price to charge for ``model``: the config's, else litellm's map, else the
    configured ``fallback`` (input, output per million). Raises PricingError when
    nothing is known."""
    try:
        found = find_map_entry(model.model, price_map)
    except PricingError:  # no litellm installed: only config prices are known
        found = None
    max_out = None
    if found:
        raw_max = found[1].get("max_output_tokens")
        max_out = raw_max if isinstance(raw_max, int) and raw_max > 0 else None
    if model.max_output_tokens:
        max_out = model.max_output_tokens
    if model.input_cost_per_million is not None and model.output_cost_per_million is not None:
        return Price(
            model.input_cost_per_million,
            model.output_cost_per_million,
            cached_input_per_million=model.cached_input_cost_per_million,
            source="config",
            max_output_tokens=max_out,
        )
    if found:
        key, entry = found
        inp = _per_million(entry, "input_cost_per_token")
        out = _per_million(entry, "output_cost_per_token")
        if inp is not None and out is not None:
            return Price(
                inp,
                out,
                cached_input_per_million=model.cached_input_cost_per_million
                or _per_million(entry, "cache_read_input_token_cost"),
                reasoning_per_million=_per_million(entry, "output_cost_per_reasoning_token"),
                source="litellm",
                map_key=key,
                max_output_tokens=max_out,
            )
    if fallback is not None:
        return Price(fallback[0], fallback[1], source="fallback", max_output_tokens=max_out)
    raise PricingError(
        f"no known price for model {model.name!r} ({model.model}): set input_cost_per_million "
        f"and output_cost_per_million for it in the config"
    )


def cost_nanos(price: Price, usage: Usage) -> int:
    """Exact cost of one call in nano-dollars, pricing cached input and reasoning
    output at their own rates when the provider reports them."""
    cached = min(max(usage.cached_tokens, 0), usage.input_tokens)
    reasoning = min(max(usage.reasoning_tokens, 0), usage.output_tokens)
    total = token_cost_nanos(usage.input_tokens - cached, price.input_per_million) + token_cost_nanos(
        usage.output_tokens - reasoning, price.output_per_million
    )
    # the cached and reasoning parts only when there are some: a zero adds nothing to the
    # integer below, and each part is three Decimal operations (a served request prices 3-5 calls)
    if cached:
        total += token_cost_nanos(cached, price.cached_input_per_million or price.input_per_million)
    if reasoning:
        total += token_cost_nanos(reasoning, price.reasoning_per_million or price.output_per_million)
    # one call's cost is at most the ledger's per-value maximum (money.py): the largest
    # price times the largest count (1e9 USD/M x 1e12 tokens) would not fit its column
    return min(int(total.to_integral_value()), _MAX_COST_NANOS)


_MAX_COST_NANOS = int(MAX_AMOUNT_USD) * NANOS_PER_USD


def charge(price: Price, usage: Usage, messages: list[dict[str, str]], answer: str) -> tuple[Usage, int, str]:
    """What a call is charged: its usage, cost in nano-USD and price source. A side the
    provider reported as 0 (or not at all, or as garbage) while there was text on it is
    estimated from that text and the source marked ``+estimated-tokens``, never silently
    $0 (a usage of `{"prompt_tokens": 10, "completion_tokens": NaN}` once charged the
    answer's 30 tokens as nothing)."""
    input_tokens = usage.input_tokens or sum(estimate_tokens(m["content"]) for m in messages)
    output_tokens = usage.output_tokens or estimate_tokens(answer)
    source = price.source
    if (input_tokens, output_tokens) != (usage.input_tokens, usage.output_tokens):
        usage = Usage(input_tokens, output_tokens, usage.cached_tokens, usage.reasoning_tokens)
        source = f"{source}+estimated-tokens"
    return usage, cost_nanos(price, usage), source


def estimate_tokens(text: str) -> int:
    """A provider-independent token estimate (about four characters a token)."""
    return max(1, math.ceil(len(text) / 4)) if text else 0
