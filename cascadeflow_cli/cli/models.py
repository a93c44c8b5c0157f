"""`cascade models`: configured models, their chains, and where each price comes from."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from cascadeflow_cli.cli.context import app_context, stdout_console


def models(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List configured models with prices per million tokens and their source."""
    from cascadeflow_cli.cli.render import models_table
    from cascadeflow_cli.engine.pricing import infer_provider, lookup_price
    from cascadeflow_cli.engine.providers import uses_fast_path
    from cascadeflow_cli.errors import PricingError

    config = app_context(ctx).config
    rows: list[dict[str, Any]] = []
    for m in config.models.values():
        row: dict[str, Any] = {
            "name": m.name,
            "model": m.model,
            "provider": infer_provider(m),
            "client": "openai-compatible" if uses_fast_path(m) else "litellm",
            "api_base": m.api_base,
        }
        try:
            price = lookup_price(m)
            row.update(
                input_cost_per_million=float(price.input_per_million),
                output_cost_per_million=float(price.output_per_million),
                cached_input_cost_per_million=float(price.cached_input_per_million)
                if price.cached_input_per_million is not None
                else None,
                price_source=price.source,
                max_output_tokens=price.max_output_tokens,
            )
        except PricingError:
            row.update(
                input_cost_per_million=None,
                output_cost_per_million=None,
                cached_input_cost_per_million=None,
                price_source="unknown",
                max_output_tokens=m.max_output_tokens,
            )
        rows.append(row)
    chains = {
        "cascade": list(config.cascade.models),
        "domains": {d: list(c) for d, c in config.domains.items()},
    }
    if config.budgets.degraded_models:
        chains["degraded"] = list(config.budgets.degraded_models)
    if as_json:
        sys.stdout.write(json.dumps({"chains": chains, "models": rows}, indent=2) + "\n")
        return
    stdout_console().print(models_table(rows, chains))
    if any(r["price_source"] == "unknown" for r in rows):
        sys.stderr.write(
            "models with an unknown price cannot be used until you set "
            "input_cost_per_million and output_cost_per_million for them\n"
        )
