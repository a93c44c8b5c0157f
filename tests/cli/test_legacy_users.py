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


# --- "José" composed (NFC) and decomposed (NFD): one person, one budget (hostile-13) ---------

COMPOSED, DECOMPOSED = "Jos\u00e9", "Jose\u0301"
PRICES = "input_cost_per_million = 1.0\noutput_cost_per_million = 1.0\n"


def _asking(tmp_path: Path, server: object, extra: str = "") -> CliRunner:
    from cascadeflow_cli.replay.server import ModelBehavior
    from tests.conftest import GOOD_ANSWER, config_text

    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))  # type: ignore[attr-defined]
    config = tmp_path / "cascadeflow.toml"
    config.write_text(config_text(server.base_url, mini_extra=PRICES, big_extra=PRICES)  # type: ignore[attr-defined]
                      + '\n[budgets]\nmode = "block"\n' + extra, encoding="utf-8")
    return CliRunner(tmp_path, config, tmp_path / "ledger.db")


def _users(db: Path) -> set[object]:
    from tests.cli.support import rows

    return {r["user"] for r in rows(db, "requests")}


def test_a_budget_set_one_way_holds_the_name_typed_the_other(tmp_path: Path, server: object) -> None:
    cli = _asking(tmp_path, server)
    assert cli("budget", "set", DECOMPOSED, "--daily", "0").code == 0
    run = cli("ask", "What is the capital of France?", "--user", COMPOSED)
    assert run.code == 3, run.stderr  # was answered: a second user without a budget
    assert server.request_count() == 0  # type: ignore[attr-defined]
    assert _users(cli.db) == {COMPOSED}
    assert _json(cli("usage", "--user", DECOMPOSED, "--json"))["total"]["requests"] == 1  # type: ignore[index]
    key = _json(cli("key", "create", DECOMPOSED, "--json"))
    assert key["user"] == COMPOSED  # type: ignore[index]


def test_a_legacy_decomposed_users_budget_and_spend_still_apply(tmp_path: Path, server: object) -> None:
    """A ledger an older version wrote: the budget and a dollar of spend under NFD."""
    from decimal import Decimal

    from cascadeflow_cli.ledger.budgets import BudgetConfig

    cli = _asking(tmp_path, server)
    with open_ledger(cli.db) as ledger:
        ledger.record(request(1, NOW.replace(hour=0, minute=1), user=DECOMPOSED, cost=100 * CENT))
        ledger.set_budget(DECOMPOSED, BudgetConfig(daily=Decimal("1")))
    for typed in (COMPOSED, DECOMPOSED):
        run = cli("ask", "What is the capital of France?", "--user", typed)
        assert run.code == 3, run.stderr  # was answered for COMPOSED: a fresh user, a fresh budget
    assert _users(cli.db) == {DECOMPOSED}  # recorded under the name the ledger keys her on
    usage = _json(cli("usage", "--user", COMPOSED, "--json"))
    assert usage["total"]["requests"] == 3  # type: ignore[index]
    shown = _json(cli("budget", "show", COMPOSED, "--json"))
    assert shown["user"] == DECOMPOSED and shown["windows"][0]["spent"] == 1.0  # type: ignore[index]
    history = tmp_path / "more.csv"
    history.write_text(f"timestamp,user,model,cost\n{NOW.date()}T00:02:00Z,{COMPOSED},openai/gpt-4o,0.5\n",
                       encoding="utf-8")
    assert cli("import", str(history)).code == 0
    assert _users(cli.db) == {DECOMPOSED}  # imported rows join her too
    assert cli("budget", "rm", COMPOSED).code == 0  # and her budget is found to remove


def test_imported_and_team_names_are_composed(tmp_path: Path, server: object) -> None:
    cli = _asking(tmp_path, server, f'[budgets.teams.ops]\nmembers = ["{DECOMPOSED}"]\ndaily = 0\n')
    history = tmp_path / "history.csv"
    history.write_text(f"timestamp,user,model,cost\n{NOW.date()}T00:02:00Z,{DECOMPOSED},openai/gpt-4o,0.5\n",
                       encoding="utf-8")
    assert cli("import", str(history)).code == 0
    assert _users(cli.db) == {COMPOSED}
    run = cli("ask", "What is the capital of France?", "--user", COMPOSED)
    assert run.code == 3 and "team ops" in run.stderr, run.stderr  # the member typed the other way
