"""`cascade anomalies` on short histories, end to end: the real command on a real SQLite
ledger built by `cascade import` from one committed CSV (tests/fixtures/history_short.csv,
written by make_short_histories.py; its docstring names the users). Every history ends
on 2026-08-29 (END), the day judged last.

A regular pattern on 60 days ($5 every three weeks, $40 every week, weekdays only) is
the user's ordinary spend at every sensitivity; a new user with 14 to 40 days of
ordinary spend (steady, noisy, a weekly pattern, spend on some days) gets no page, and
one day 20 times the typical one is found, as a high spike (at every sensitivity on
steady spend and a weekly pattern; at high on 50% noise or sparse spend), from 29 days."""

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


@pytest.mark.parametrize("days", (29, 40))
@pytest.mark.parametrize("kind", ("steady", "weekly"))
def test_a_new_users_twenty_fold_day_is_a_high_spike(ledger: CliRunner, kind: str, days: int) -> None:
    """The 20x day sits two thirds in: before day 28 on these histories, where no day was
    judged at all; now a history under eight weeks is judged whole."""
    for sensitivity in SENSITIVITIES:
        found = anomalies(ledger, f"{kind}-{days}-x20", sensitivity)
        assert [(r["kind"], r["severity"]) for r in found] == [("spike", "high")], (sensitivity, found)
        assert found[0]["actual"] > 10 * found[0]["expected"]


@pytest.mark.parametrize("days", (29, 40))
@pytest.mark.parametrize("kind", NEW_KINDS)
def test_a_noisy_or_sparse_new_users_twenty_fold_day_is_found_at_high(ledger: CliRunner, kind: str,
                                                                       days: int) -> None:
    """On 50% day-to-day noise, or spend on 40% of days, a noise scale read from 28-39
    days is too uncertain for low's 1 in 1,000 (a t of about 10 degrees of freedom:
    `tails.prior_threshold`); high still finds the day."""
    found = anomalies(ledger, f"{kind}-{days}-x20", "high")
    assert any(r["kind"] == "spike" and r["severity"] == "high" and r["actual"] > 10 * r["expected"]
               for r in found), found


def test_a_weekday_seen_only_twice_is_not_judged(ledger: CliRunner) -> None:
    """On 14 days each weekday is seen twice, so none has a profile of the other days:
    its weekend then paged as drops against weekday spend. Such days are not judged
    (so a 20x day there is not found either: the cost)."""
    for kind in NEW_KINDS:
        for sensitivity in SENSITIVITIES:
            assert anomalies(ledger, f"{kind}-14-x20", sensitivity) == [], (kind, sensitivity)
