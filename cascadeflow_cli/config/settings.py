"""The configuration's shape: the frozen dataclasses every layer reads, their defaults,
and the names a config may use (enforcement modes, budget windows, hooks, domains)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from cascadeflow_cli.errors import ConfigError, InputError

CONFIG_FILENAME = "cascadeflow.toml"
APP_NAME = "cascadeflow"
ENFORCEMENT_MODES = ("warn", "degrade", "block")
QUALITY_PRESETS = ("fast", "balanced", "strict")
CLIENTS = ("auto", "openai", "litellm")
BUDGET_WINDOWS = ("daily", "weekly", "monthly", "total")
HOOK_NAMES = ("on_budget_check", "on_model_filter", "on_budget_warning")


@dataclass(frozen=True)
class ModelConfig:
    """One model we can call. ``name`` is ours (used in chains); ``model`` is litellm's id."""

    name: str
    model: str
    api_base: str | None = None
    api_key_env: str | None = None
    input_cost_per_million: Decimal | None = None
    output_cost_per_million: Decimal | None = None
    cached_input_cost_per_million: Decimal | None = None
    timeout: float = 60.0
    max_retries: int = 2
    retry_delay: float = 0.5  # seconds before the first retry; doubles each time
    max_output_tokens: int | None = None
    client: str = "auto"

    @property
    def provider_prefix(self) -> str | None:
        """The litellm provider named in the id (``openai`` in ``openai/gpt-4o``), if any."""
        return self.model.split("/", 1)[0] if "/" in self.model else None

    @property
    def wire_model(self) -> str:
        """The model name an OpenAI-compatible server expects (the id without provider)."""
        return self.model.split("/", 1)[1] if "/" in self.model else self.model


@dataclass(frozen=True)
class LedgerConfig:
    path: Path | None = None
    timezone: str = "UTC"
    store_prompts: bool = True
    url: str | None = None  # postgresql://... (issue 13); see cascadeflow_cli/dburl.py
    password_env: str | None = None  # the variable holding the PostgreSQL password


@dataclass(frozen=True)
class CascadeConfig:
    models: tuple[str, ...] = ("mini", "big")
    quality_threshold: float | None = None  # None: the preset's threshold
    quality_preset: str = "balanced"
    max_tokens: int = 1024
    system: str | None = None


@dataclass(frozen=True)
class BudgetsConfig:
    mode: str = "warn"
    warn_at: float = 0.8
    degrade_at: float = 0.9
    block_at: float = 1.0
    degraded_models: tuple[str, ...] | None = None
    default: Mapping[str, Decimal] = field(default_factory=dict)
    fallback_input_cost_per_million: Decimal | None = None
    fallback_output_cost_per_million: Decimal | None = None
    teams: Mapping[str, TeamBudget] = field(default_factory=dict)  # [budgets.teams.NAME]


@dataclass(frozen=True)
class TeamBudget:
    """One budget the members share, checked with each member's own in one transaction."""

    members: tuple[str, ...]
    limits: Mapping[str, Decimal]  # window -> USD


# --- [telemetry] (issue 15): OpenTelemetry export, off unless asked for -------------


@dataclass(frozen=True)
class TelemetryConfig:
    enabled: bool = False  # the OTEL_EXPORTER_OTLP_*ENDPOINT environment also turns it on
    endpoint: str | None = None  # the collector's base URL; else the OTEL_* environment
    flush_timeout: float = 2.0  # seconds a command may wait for the export at exit
    emit_cost: bool = True
    capture_content: bool = False
    record_user: bool = True


# --- [quality] (issue 9): shared by the calibrated model (calibration, target_quality)
# and the live signals (shadow_rate, logprobs, consistency_samples); defaults per CLI.md.


@dataclass(frozen=True)
class QualityConfig:
    """``[quality]``: the calibrated quality check (see `cascade calibrate`)."""

    calibration: Path | None = None  # resolved relative to the config file
    target_quality: float | None = None  # None: the target the calibration was fitted for
    shadow_rate: float = 0.0
    logprobs: bool = False
    consistency_samples: int = 1
    # run drafts' Python against their own examples in a sandbox (quality/code_exec.py);
    # None (unset): on where the kernel sandbox (quality/sandbox.py) is available
    execute_code: bool | None = None


@dataclass(frozen=True)
class AppConfig:
    models: Mapping[str, ModelConfig]
    cascade: CascadeConfig = CascadeConfig()
    ledger: LedgerConfig = LedgerConfig()
    budgets: BudgetsConfig = BudgetsConfig()
    domains: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    hooks: Mapping[str, str] = field(default_factory=dict)
    telemetry: TelemetryConfig = TelemetryConfig()
    source: Path | None = None  # the file it was read from; None for built-in defaults
    quality: QualityConfig = QualityConfig()
    custom_domains: Mapping[str, Any] = field(default_factory=dict)  # NAME -> routing.custom.CustomDomain

    def domain_names(self) -> tuple[str, ...]:
        """Every valid domain name for this config: the built-in ones, then [domains.custom]."""
        from cascadeflow_cli.routing.custom import domain_names

        return domain_names(self.custom_domains)

    def chain(self, names: tuple[str, ...] | list[str] | None = None) -> list[ModelConfig]:
        """Resolve model names (default: the cascade chain) to their configs."""
        wanted = tuple(names) if names else self.cascade.models
        unknown = [n for n in wanted if n not in self.models]
        if unknown:
            known = ", ".join(sorted(self.models)) or "none"
            raise ConfigError(f"unknown model {unknown[0]!r} (configured: {known})")
        twice = [n for i, n in enumerate(wanted) if n in wanted[:i]]
        if twice:  # `--models mini,mini` paid the same model twice for the same answer
            raise ConfigError(f"the chain names model {twice[0]!r} twice (a chain escalates to a "
                              "different model)")
        return [self.models[n] for n in wanted]


DEFAULT_MODELS = {
    "mini": ModelConfig(name="mini", model="openai/gpt-4o-mini", api_key_env="OPENAI_API_KEY"),
    "big": ModelConfig(name="big", model="openai/gpt-4o", api_key_env="OPENAI_API_KEY"),
}


def default_config() -> AppConfig:
    """What we run with when no config file exists: OpenAI's mini model, then 4o."""
    return AppConfig(models=dict(DEFAULT_MODELS))


# --- domains a request may name ---------------------------------------------------------


def known_domains(config: AppConfig) -> tuple[str, ...]:
    """Every domain a request may name (``ask --domain``, a batch row's ``domain``): the
    detector's built-in ones, the ``[domains.custom]`` ones, then the configured
    ``[domains]`` keys. The one place that says which domains exist, so a new source of
    domains is added here only."""
    return tuple(dict.fromkeys([*config.domain_names(), *config.domains]))


def check_domain(config: AppConfig, domain: str, where: str = "") -> str:
    """``domain`` if a request may name it, else the one InputError every command gives
    (``ask --domain``, a batch row, ``quality check``, a calibration row): an unknown name
    was scored as prose and recorded or fitted as if it meant something. ``where``
    (``rows.jsonl:3: ``) prefixes the line."""
    known = known_domains(config)
    if domain not in known:
        raise InputError(f"{where}unknown domain {domain!r} (known: {', '.join(known)})")
    return domain
