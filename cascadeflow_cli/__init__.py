"""CascadeFlow CLI: answer each query with the cheapest LLM that is good enough, under
per-user budgets, with every call in a local SQLite ledger.

Public names are imported lazily so that `import cascadeflow_cli` (and the CLI's start)
stays fast."""

# nothing imported here: the console script imports this file before its Ctrl-C guard
# (cli/entry.py) can run, and typing alone is ~1 ms of that window
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Cascade": "cascadeflow_cli.engine.cascade",
    "CascadeResult": "cascadeflow_cli.engine.cascade",
    "AppConfig": "cascadeflow_cli.config",
    "ModelConfig": "cascadeflow_cli.config",
    "load_config": "cascadeflow_cli.config",
    "Ledger": "cascadeflow_cli.ledger.db",
    "open_ledger": "cascadeflow_cli.ledger.db",
    "CostTracker": "cascadeflow_cli.ledger.tracker",
    "BudgetConfig": "cascadeflow_cli.ledger.budgets",
    "EnforcementContext": "cascadeflow_cli.ledger.enforcement",
    "EnforcementCallbacks": "cascadeflow_cli.ledger.enforcement",
    "BudgetGate": "cascadeflow_cli.ledger.enforcement",
    "CostForecaster": "cascadeflow_cli.analytics.forecast",
    "CostPrediction": "cascadeflow_cli.analytics.forecast",
    "AnomalyDetector": "cascadeflow_cli.analytics.anomaly",
    "Anomaly": "cascadeflow_cli.analytics.anomaly",
    "QualityValidator": "cascadeflow_cli.quality",
    "QualityPreset": "cascadeflow_cli.quality",
    "QualityResult": "cascadeflow_cli.quality",
    "DomainDetector": "cascadeflow_cli.routing",
    "DomainResult": "cascadeflow_cli.routing",
    "CodeComplexityAnalyzer": "cascadeflow_cli.routing",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> "Any":
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cascadeflow_cli' has no attribute {name!r}")
