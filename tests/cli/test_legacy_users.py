"""A user name an older version stored with a character today's check refuses ($'alice\\r',
' eve'): `budget rm` and `budget show` found it under its spelling (`text.shown_name`), the
read commands' `--user` did not, and `budget show` found a legacy user's spend only when
the user had a budget of their own (one under [budgets.default] was shown $0.00 spent)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cascadeflow_cli.ledger.db import open_ledger
from tests.conftest import CliRunner
from tests.ledger.test_backends import request

NOW = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
CENT = 10_000_000  # nano-dollars


@pytest.fixture
def legacy(tmp_path: Path) -> CliRunner:
    """A ledger as an older version wrote it: 'alice\\r' spends a cent a day for two
    months and $5 on one day; ' eve' spent 5 cents today; 'bob' is a name of today."""
    db = tmp_path / "ledger.db"
    with open_ledger(db) as ledger:
        ledger.record_many([request(n, NOW - timedelta(days=n), user="alice\r", cost=CENT)
                            for n in range(1, 60)] +
                           [request(100, NOW - timedelta(days=3), user="alice\r", cost=500 * CENT),
                            request(101, NOW - timedelta(minutes=5), user=" eve", cost=5 * CENT),
                            request(102, NOW - timedelta(days=1), user="bob", cost=CENT)])
    config = tmp_path / "cascadeflow.toml"
    config.write_text('[budgets]\nmode = "block"\n[budgets.default]\ndaily = 1.0\n', encoding="utf-8")
    return CliRunner(tmp_path, config, db)


def _json(run: object) -> object:
    assert run.code == 0, run.stderr  # type: ignore[attr-defined]
    return json.loads(run.stdout)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("spelled", "stored", "requests"), [("alice\\x0d", "alice\r", 60),
                                                            ("\\x20eve", " eve", 1)],
                         ids=["carriage-return", "leading-space"])
def test_read_commands_find_a_legacy_user_by_its_spelling(legacy: CliRunner, spelled: str, stored: str,
                                                          requests: int) -> None:
    usage = _json(legacy("usage", "--user", spelled, "--json"))
    assert usage["total"]["requests"] == requests  # type: ignore[index]
    logs = _json(legacy("logs", "--user", spelled, "-n", "0", "--json"))
    assert len(logs) == requests and {r["user"] for r in logs} == {stored}  # type: ignore[arg-type]
    export = _json(legacy("export", "--json", "--user", spelled))
    assert {r["user"] for r in export} == {stored}  # type: ignore[union-attr]
    forecast = _json(legacy("forecast", "--user", spelled, "--json"))
    assert forecast["mean"] > 0  # type: ignore[index]
    # as it is stored (typed $'alice\r'), it is found as before
    assert _json(legacy("usage", "--user", stored, "--json"))["total"]["requests"] == requests  # type: ignore[index]
    # a name of today is not rewritten; one that spells nothing finds nothing
    assert _json(legacy("usage", "--user", "bob", "--json"))["total"]["requests"] == 1  # type: ignore[index]
    assert _json(legacy("usage", "--user", "zed\\x0d", "--json"))["total"]["requests"] == 0  # type: ignore[index]


def test_anomalies_of_a_legacy_user_by_its_spelling(legacy: CliRunner) -> None:
    found = _json(legacy("anomalies", "--user", "alice\\x0d", "--no-models", "--json"))
    assert [(a["user"], a["kind"]) for a in found] == [("alice\r", "spike")]  # type: ignore[union-attr]


def test_budget_show_finds_a_legacy_users_spend_under_the_default_budget(legacy: CliRunner) -> None:
    shown = _json(legacy("budget", "show", "\\x20eve", "--json"))
    assert shown["user"] == " eve" and shown["source"] == "default"  # type: ignore[index]
    [daily] = shown["windows"]  # type: ignore[index]
    assert daily["spent"] == 0.05 and daily["limit"] == 1.0


def test_tables_spell_a_legacy_user_out(legacy: CliRunner) -> None:
    """usage, logs, anomalies and forecast printed 'alice\\r' as 'alice' (rich drops a CR):
    two users who look like one. budget list and key list spell them out; these do too."""
    runs = {"usage": legacy("usage"), "logs": legacy("logs", "-n", "0"),
            "anomalies": legacy("anomalies", "--no-models"),
            "forecast": legacy("forecast", "--user", "alice\r")}
    for name, run in runs.items():
        assert run.code == 0, (name, run.stderr)
        assert "alice\\x0d" in run.stdout, (name, run.stdout)
    assert "\\x20eve" in runs["usage"].stdout and "\\x20eve" in runs["logs"].stdout
    assert "alice\\x0d: spike" in runs["anomalies"].stdout.replace("\n", " ")
