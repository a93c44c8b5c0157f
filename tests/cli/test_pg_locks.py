"""A PostgreSQL ledger whose locks another session holds for good (a DBA's LOCK TABLE, a
cascade process stopped mid-check, an idle transaction): the command gives up in one
line, exit 1, instead of waiting for ever; nothing is asked of a model it cannot record."""

from __future__ import annotations

import time

import pytest

from cascadeflow_cli.dburl import parse_location
from cascadeflow_cli.ledger.postgres import budget_sql
from cascadeflow_cli.ledger.postgres.store import open_postgres
from tests.conftest import CliRunner, assert_one_error_line
from tests.pg_fixtures import table_rows

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[dev]'")

SHORT = "&options=-c%20lock_timeout%3D2s"  # the role's or URL's own limit wins over ours (30 s)


def test_a_budget_check_behind_a_held_user_lock_gives_up_in_one_line(cli: CliRunner,
                                                                      pg_ledger_url: str) -> None:
    url = pg_ledger_url + SHORT
    assert cli("budget", "set", "alice", "--daily", "5", "--db", url).code == 0
    with psycopg.connect(pg_ledger_url, autocommit=True) as holder:
        # what a cascade process stopped (SIGSTOP, a debugger) inside its budget check holds
        holder.execute("select pg_advisory_lock(%s)", [budget_sql.lock_key("user", "alice")])
        started = time.monotonic()
        run = cli("ask", "What is the capital of France?", "--user", "alice", "--db", url)
        waited = time.monotonic() - started
    assert run.code == 1, run.stderr
    assert_one_error_line(run.stderr)
    assert "lock timeout" in run.stderr and "another session holds a lock" in run.stderr
    assert waited < 60  # before: still waiting when the runner gave up at 120 s
    assert table_rows(pg_ledger_url, "requests") == []  # nothing asked, nothing to record
    assert table_rows(pg_ledger_url, "reservations") == []
    # bob's checks never queue behind alice's lock
    run = cli("ask", "What is the capital of France?", "--user", "bob", "--db", url)
    assert run.code == 0, run.stderr


def test_a_table_locked_by_hand_is_one_line_not_a_hang(cli: CliRunner, pg_ledger_url: str) -> None:
    with psycopg.connect(pg_ledger_url) as holder:
        holder.execute("lock table requests in access exclusive mode")  # held until the rollback
        run = cli("logs", "--db", pg_ledger_url + SHORT)
        holder.rollback()
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert "lock timeout" in run.stderr


def test_the_ledgers_sessions_have_lock_and_idle_limits_unless_set(pg_ledger_url: str) -> None:
    def settings(url: str) -> tuple[str, str]:
        with open_postgres(parse_location(url)) as ledger:
            row = ledger._value("select current_setting('lock_timeout') || ' ' || "
                                "current_setting('idle_in_transaction_session_timeout')")
        lock, idle = str(row).split()
        return lock, idle

    assert settings(pg_ledger_url) == ("30s", "1min")
    idle = "%20-c%20idle_in_transaction_session_timeout%3D5s"
    assert settings(pg_ledger_url + SHORT + idle) == ("2s", "5s")
