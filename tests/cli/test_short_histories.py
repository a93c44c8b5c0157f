"""`cascade anomalies` on short histories, end to end: the real command on a real SQLite
ledger built by `cascade import` from one committed CSV (tests/fixtures/history_short.csv,
written by make_short_histories.py; its docstring names the users). Every history ends
on 2026-08-29 (END), the day judged last.

A regular pattern on 60 days ($5 every three weeks, $40 every week, weekdays only) is
the user's ordinary spend at every sensitivity; a new user with 14 to 40 days of
ordinary spend (steady, noisy, a weekly pattern, spend on some days) gets no page, and
one day 20 times what it was is found, as a high spike, at every sensitivity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_forecast_cmd import ANOMALY_KEYS, _strict
from tests.conftest import FIXTURES, CliRunner

HISTORY = FIXTURES / "history_short.csv"
END = "2026-08-29"
SENSITIVITIES = ("low", "medium", "high")
REGULAR = ("every21", "every21b", "every7", "every14", "weekdays")
NEW_DAYS = (14, 20, 29, 40)
NEW_KINDS = ("steady", "noisy", "weekly", "sparse")


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> CliRunner:
    root: Path = tmp_path_factory.mktemp("short")
    config = root / "cascadeflow.toml"
    config.write_text('[ledger]\ntimezone = "UTC"\n', encoding="utf-8")
    runner = CliRunner(root, config, root / "ledger.db")
    run = runner("import", str(HISTORY))
    assert run.code == 0, run.stderr
    return runner


def anomalies(runner: CliRunner, user: str, sensitivity: str) -> list[dict[str, Any]]:
    run = runner("anomalies", "--json", "--user", user, "--sensitivity", sensitivity, "--until", END)
    assert run.code == 0, run.stderr
    data = _strict(run.stdout)
    assert isinstance(data, list)
    for row in data:
        assert set(row) >= ANOMALY_KEYS and row["user"] == user
    return data


@pytest.mark.parametrize("user", REGULAR)
def test_a_regular_pattern_on_sixty_days_does_not_page(ledger: CliRunner, user: str) -> None:
    """$5 every 21 days paged its one $5 day after the first four weeks as a high spike
    (score +91): the days before them were not scored, so the pattern had one day."""
    for sensitivity in SENSITIVITIES:
        assert anomalies(ledger, user, sensitivity) == [], sensitivity


@pytest.mark.parametrize("days", NEW_DAYS)
@pytest.mark.parametrize("kind", NEW_KINDS)
def test_a_new_users_ordinary_days_do_not_page(ledger: CliRunner, kind: str, days: int) -> None:
    for sensitivity in SENSITIVITIES:
        assert anomalies(ledger, f"{kind}-{days}", sensitivity) == [], sensitivity
