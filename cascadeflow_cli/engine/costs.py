"""What a request may cost before it is sent: each model's price (kept per model) and a
chain's worst case, as the budget gate reserves it, and the cheaper chain degrade mode
switches to. Imported without the rest of the engine (``budget show`` estimates the
next request with it)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from cascadeflow_cli.config import AppConfig, ModelConfig
from cascadeflow_cli.engine.pricing import Price, Usage, cost_nanos, lookup_price
from cascadeflow_cli.errors import PricingError

Estimate = Callable[[Sequence[str]], int]  # a chain's model names -> its worst case, nano-USD


class ChainCosts:
    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self._prices: dict[str, tuple[ModelConfig, Price]] = {}

    def price(self, model: ModelConfig) -> Price:
        """The price we charge for ``model`` (the budgets' fallback price if configured).
        Kept per model: the config and the bundled map do not change while we run, and the
        lookup was about a tenth of a served request's CPU (15 lookups a request)."""
        cached = self._prices.get(model.name)
        if cached is not None and cached[0] is model:
            return cached[1]
        b = self.config.budgets
        fallback = None
        if b.fallback_input_cost_per_million is not None and b.fallback_output_cost_per_million is not None:
            fallback = (b.fallback_input_cost_per_million, b.fallback_output_cost_per_million)
        price = lookup_price(model, fallback=fallback)  # an unknown price raises, and is not kept
        self._prices[model.name] = (model, price)
        return price

    def estimate(self, messages: list[dict[str, str]], max_tokens: int) -> Estimate:
        """The most one request can cost on a chain: every model runs, each writes
        ``max_tokens``, and the prompt is counted generously (two bytes a token). Kept per
        chain: the gate asks for the same chains several times (its estimate, the degraded
        chain's, the hooks')."""
        prompt = sum(math.ceil(len(m["content"].encode("utf-8")) / 2) + 8 for m in messages)
        seen: dict[tuple[str, ...], int] = {}
        calls: dict[str, int] = {}  # one call of a model: priced once, whichever chains hold it

        def one_call(name: str) -> int:
            cost = calls.get(name)
            if cost is None:
                price = self.price(self.config.models[name])
                written = min(max_tokens, price.max_output_tokens or max_tokens)
                cost = calls[name] = cost_nanos(price, Usage(prompt, written))
            return cost

        def worst_case(names: Sequence[str]) -> int:
            key = tuple(names)
            if key not in seen:
                samples = self.config.quality.consistency_samples  # a draft may be sampled N times
                seen[key] = sum(one_call(name) * (samples if index < len(key) - 1 else 1)
                                for index, name in enumerate(key))
            return seen[key]

        return worst_case

    def degraded_chain(self, names: Sequence[str], worst_case: Estimate) -> list[str] | None:
        """The cheaper chain for degrade mode: the configured one, else this chain
        without its most expensive model; None unless it is cheaper by price (its dearest
        model is cheaper than this chain's dearest, and so is its worst case). A configured
        chain holding a model of unknown price is none: what it costs cannot be reserved
        (nor counted as $0); it made every budgeted user's request fail, however far under."""
        explicit = self.config.budgets.degraded_models
        candidate = list(explicit) if explicit else list(names[:-1])
        if not candidate:
            return None

        def dearest(chain: Sequence[str]) -> int:
            return max(worst_case([n]) for n in chain)

        try:
            cheap, cheap_worst = dearest(candidate), worst_case(candidate)
        except PricingError:
            return None
        cheaper = cheap < dearest(names) and cheap_worst < worst_case(names)
        return candidate if cheaper else None
