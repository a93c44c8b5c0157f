"""A PostgreSQL ledger that cannot be used says so in one line, exit 1, before anything is
sent: the server down, a wrong password (never printed), a newer schema."""

from __future__ import annotations

import pytest

from tests import pg_server as pg
from tests.conftest import CliRunner, assert_one_error_line

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[dev]'")


def test_server_down_is_one_line_and_nothing_is_asked(cli: CliRunner) -> None:
    url = f"postgresql://nobody@127.0.0.1:{pg._free_port()}/cascade"
    run = cli("ask", "What is the capital of France?", "--db", url)
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert "cannot connect to the ledger" in run.stderr and "Connection refused" in run.stderr
    assert run.stdout == ""


def test_a_wrong_password_is_refused_and_never_shown(cli: CliRunner, pg_server: pg.PgServer,
                                                     pg_url: str) -> None:
    if pg_server.external:
        pytest.skip("$CASCADE_TEST_PG_URL: the password role exists only on a throwaway cluster")
    db = pg_url.split("?")[0].rsplit("/", 1)[1]
    run = cli("logs", "--db", pg_server.tcp_url(db, password="hunter2-wrong"))
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert "password authentication failed" in run.stderr
    assert "hunter2-wrong" not in run.stderr and ":***@" in run.stderr
    # the right one from password_env: works, and is not shown either
    run = cli("logs", "--json", "--db", pg_server.tcp_url(db), LEDGER_PW=pg.PASSWORD)
    assert run.code == 1 and "no password supplied" in run.stderr  # no password_env configured yet
    cli.config.write_text(cli.config.read_text() + '\n[ledger]\npassword_env = "LEDGER_PW"\n')
    run = cli("logs", "--json", "--db", pg_server.tcp_url(db), LEDGER_PW=pg.PASSWORD)
    assert run.code == 0, run.stderr
    assert run.json() == []


def test_a_newer_schema_is_refused_untouched(cli: CliRunner, pg_url: str) -> None:
    assert cli("logs", "--db", pg_url).code == 0  # creates and migrates it
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("insert into _migrations values (999, '999_from_the_future', now())")
    run = cli("logs", "--db", pg_url)
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert "newer than this cascade" in run.stderr and "999_from_the_future" in run.stderr
