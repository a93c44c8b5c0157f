"""`cascadeflow.toml`: find it, read it (tomllib), validate it, write a starter (tomli-w).

The package's parts: ``settings`` (the dataclasses and the names a config may use),
``locate`` (where the config and the ledger are), ``parse`` (strict validation) and
``starter`` (writing). Every name is importable from ``cascadeflow_cli.config``."""

from cascadeflow_cli.config.locate import (
    find_config,
    load_config,
    resolve_db_path,
    resolve_ledger_location,
    user_config_path,
    user_data_dir,
)
from cascadeflow_cli.config.parse import check_timezone, parse_config
from cascadeflow_cli.config.settings import (
    APP_NAME,
    BUDGET_WINDOWS,
    CLIENTS,
    CONFIG_FILENAME,
    DEFAULT_MODELS,
    ENFORCEMENT_MODES,
    HOOK_NAMES,
    QUALITY_PRESETS,
    AppConfig,
    BudgetsConfig,
    CascadeConfig,
    LedgerConfig,
    ModelConfig,
    QualityConfig,
    TeamBudget,
    TelemetryConfig,
    check_domain,
    default_config,
    known_domains,
)
from cascadeflow_cli.config.starter import config_to_dict, starter_config

__all__ = [
    "APP_NAME",
    "BUDGET_WINDOWS",
    "CLIENTS",
    "CONFIG_FILENAME",
    "DEFAULT_MODELS",
    "ENFORCEMENT_MODES",
    "HOOK_NAMES",
    "QUALITY_PRESETS",
    "AppConfig",
    "BudgetsConfig",
    "CascadeConfig",
    "LedgerConfig",
    "ModelConfig",
    "QualityConfig",
    "TeamBudget",
    "TelemetryConfig",
    "check_domain",
    "check_timezone",
    "config_to_dict",
    "default_config",
    "find_config",
    "known_domains",
    "load_config",
    "parse_config",
    "resolve_db_path",
    "resolve_ledger_location",
    "starter_config",
    "user_config_path",
    "user_data_dir",
]
