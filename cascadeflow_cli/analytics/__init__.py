"""Pure analytics over daily spend series: forecasting and anomaly detection (numpy).

Names are imported lazily, so importing this package costs nothing until one is used."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "CostForecaster": "cascadeflow_cli.analytics.forecast",
    "CostPrediction": "cascadeflow_cli.analytics.forecast",
    "DailyForecast": "cascadeflow_cli.analytics.forecast",
    "BudgetPeriod": "cascadeflow_cli.analytics.forecast",
    "BudgetOutlook": "cascadeflow_cli.analytics.forecast",
    "budget_period": "cascadeflow_cli.analytics.forecast",
    "window_period": "cascadeflow_cli.analytics.forecast",
    "window_budget": "cascadeflow_cli.analytics.forecast",
    "AnomalyDetector": "cascadeflow_cli.analytics.anomaly",
    "Anomaly": "cascadeflow_cli.analytics.anomaly",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cascadeflow_cli.analytics' has no attribute {name!r}")
