"""Human output, one renderer per kind of table or summary: ``requests`` (ask, logs,
demo, models), ``budget``, ``spend`` (usage, anomalies), ``quality`` (quality check,
calibrate, domain). Commands build their data through a use case and print what these
return; the names below are the ones commands used before the split."""

from cascadeflow_cli.cli.layout import fitted_table
from cascadeflow_cli.cli.render.budget import budget_table, budgets_table
from cascadeflow_cli.cli.render.requests import (
    ask_summary,
    demo_table,
    demo_totals,
    logs_table,
    models_table,
    quality_text,
    savings_text,
    verdict,
)

__all__ = ["ask_summary", "budget_table", "budgets_table", "demo_table", "demo_totals", "fitted_table",
           "logs_table", "models_table", "quality_text", "savings_text", "verdict"]
