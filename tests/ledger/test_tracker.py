from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

import cascadeflow_cli
from cascadeflow_cli.config import parse_config
from cascadeflow_cli.errors import InputError
from cascadeflow_cli.ledger.budgets import BudgetConfig
from cascadeflow_cli.ledger.tracker import CostTracker
from tests.conftest import ledger_rows


def tracker(tmp_path: Path, extra: str = "") -> CostTracker:
    config = parse_config(f'[budgets]\nmode = "block"\n{extra}', tmp_path / "cascadeflow.toml")
    return CostTracker(tmp_path / "l.db", config, user_budgets={"alice": BudgetConfig(daily=Decimal("1"))})


def test_seed_api_is_importable_from_the_package() -> None:
    for name in (
        "CostForecaster",
        "CostPrediction",
        "AnomalyDetector",
        "Anomaly",
        "CostTracker",
        "BudgetConfig",
        "EnforcementContext",
        "EnforcementCallbacks",
        "QualityValidator",
        "QualityPreset",
        "Cascade",
    ):
        assert getattr(cascadeflow_cli, name).__name__ == name


def test_add_cost_counts_against_the_budget(tmp_path: Path) -> None:
    t = tracker(tmp_path)
    assert t.can_afford("alice", 0.5) == (True, "allow", None)
    t.add_cost("gpt-4o", "openai", tokens=1000, cost=0.7, user_id="alice")
    ok, action, message = t.can_afford("alice", 0.5)
    assert (ok, action) == (False, "block") and "daily budget" in (message or "")
    summary = t.get_user_summary("alice")
    assert summary["total_cost"] == 0.7 and summary["entries"] == 1
    assert summary["windows"][0]["spent"] == 0.7
    [row] = ledger_rows(tmp_path / "l.db", "requests")
    assert row["cost_nusd"] == 700_000_000  # exact: no float drift


def test_no_float_drift_over_many_small_costs(tmp_path: Path) -> None:
    t = tracker(tmp_path)
    for _ in range(1000):
        t.add_cost("m", "p", tokens=1, cost=0.1, user_id="bob")
    assert t.get_user_summary("bob")["total_cost"] == 100.0  # sum(0.1 floats) would be 99.9999999999986


def test_negative_cost_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        tracker(tmp_path).add_cost("m", "p", tokens=1, cost=-1, user_id="x")


def test_can_afford_consults_the_hook(tmp_path: Path) -> None:
    (tmp_path / "deny_hook.py").write_text("def check(ctx):\n    return ('block', f'no for {ctx.user_id}')\n")
    t = tracker(tmp_path, '[hooks]\non_budget_check = "deny_hook:check"')
    assert t.can_afford("alice", 0.01) == (False, "block", "no for alice")
