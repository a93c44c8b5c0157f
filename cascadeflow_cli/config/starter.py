"""Writing configuration: the commented starter file of `cascade config init` and the
effective configuration as plain data (`cascade config show`)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from cascadeflow_cli.config.parse import parse_config
from cascadeflow_cli.config.settings import AppConfig, QualityConfig, TelemetryConfig

# --- writing ----------------------------------------------------------------------

# (comment, table header, flat values): tomli-w writes each body; headers are ours so
# that [[models]] stays an array of tables rather than an inline array.
_STARTER_SECTIONS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "# Where the ledger lives and how days are counted (IANA time zone for budget windows).",
        "[ledger]",
        {"timezone": "UTC", "store_prompts": True},
    ),
    (
        "# Models, cheapest first. `model` is a litellm model id; `api_base` points at any\n"
        "# OpenAI-compatible server (Ollama, vLLM, llama.cpp). Prices come from litellm's\n"
        "# bundled price map unless you set input/output_cost_per_million (USD).",
        "[[models]]",
        {"name": "mini", "model": "openai/gpt-4o-mini", "api_key_env": "OPENAI_API_KEY", "timeout": 60},
    ),
    (
        "",
        "[[models]]",
        {"name": "big", "model": "openai/gpt-4o", "api_key_env": "OPENAI_API_KEY", "timeout": 60},
    ),
    (
        "# The cascade: draft with the first model, escalate while the quality score is\n"
        "# below the threshold (presets: fast | balanced | strict).",
        "[cascade]",
        {"models": ["mini", "big"], "quality_preset": "balanced", "max_tokens": 1024},
    ),
    (
        "# Budget enforcement: warn | degrade | block, at these fractions of a limit.",
        "[budgets]",
        {"mode": "warn", "warn_at": 0.8, "degrade_at": 0.9, "block_at": 1.0},
    ),
]


def starter_config() -> str:
    """A commented starter file. tomli-w writes each section; the comments go between."""
    import tomli_w

    parts = ["# cascadeflow.toml: see cascadeflow.toml.example for every key.\n"]
    for comment, header, values in _STARTER_SECTIONS:
        parts.append(f"\n{comment}\n{header}\n" if comment else f"\n{header}\n")
        parts.append(tomli_w.dumps(values))
    text = "".join(parts)
    parse_config(text)  # never write a file we would refuse to read
    return text


def config_to_dict(config: AppConfig) -> dict[str, Any]:
    """The effective configuration as plain TOML/JSON-able data."""

    def clean(d: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            if v is None:
                continue
            if isinstance(v, Decimal):
                v = float(v)
            elif isinstance(v, Path):
                v = str(v)
            elif isinstance(v, tuple):
                v = list(v)
            elif isinstance(v, Mapping):
                v = clean(dict(v))
            out[k] = v
        return out

    from dataclasses import asdict

    data: dict[str, Any] = {
        "ledger": clean(asdict(config.ledger) | _masked_url(config.ledger.url)),
        "models": [clean(asdict(m)) for m in config.models.values()],
        "cascade": clean(asdict(config.cascade)),
        "budgets": clean({**asdict(config.budgets), "default": dict(config.budgets.default),
                          "teams": {name: {"members": team.members, **team.limits}
                                    for name, team in config.budgets.teams.items()}}),
    }
    if config.domains:
        data["domains"] = {d: list(c) for d, c in config.domains.items()}
    if config.hooks:
        data["hooks"] = dict(config.hooks)
    if config.telemetry != TelemetryConfig():
        data["telemetry"] = clean(asdict(config.telemetry))
    if config.quality != QualityConfig():
        data["quality"] = clean(asdict(config.quality))
    return data


def _masked_url(url: str | None) -> dict[str, Any]:
    """A ledger URL as shown: never with a password in it."""
    from cascadeflow_cli.dburl import mask_url

    return {"url": mask_url(url)} if url is not None else {}
