"""A PostgreSQL ledger that cannot be used says so in one line, exit 1, before anything is
sent: the server down, a wrong password (never printed), a newer schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from cascadeflow_cli.replay.server import ReplayServer
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


def test_an_answer_holding_a_nul_character_is_recorded_on_either_backend(
    ledger_url: str, server: ReplayServer, config_file: Path, tmp_path: Path
) -> None:
    """PostgreSQL's text cannot hold U+0000, which a provider's answer may: the paid answer
    ended 'answered, but not recorded' (exit 4) and its journal entry failed every replay,
    so every later `ask` was refused. The NUL is stored as U+FFFD there."""
    from cascadeflow_cli.replay.server import ModelBehavior

    answer = "Paris is the capital\x00 of France. It has been the seat of government for centuries."
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=answer))
    cli = CliRunner(tmp_path, config_file, tmp_path / "unused.db")  # CASCADE_DB below decides
    env = {"CASCADE_DB": ledger_url, "OPENAI_API_KEY": "sk-test"}
    first = cli("ask", "What is the capital of France?", **env)
    assert first.code == 0, first.stderr
    second = cli("ask", "What is the capital of Spain?", **env)  # not refused by a stuck journal
    assert second.code == 0, second.stderr
    logs = cli("logs", "--json", "-n", "0", **env)
    assert logs.code == 0, logs.stderr
    stored = sorted(r["answer"] for r in logs.json())  # type: ignore[union-attr, index]
    assert stored[0] in (answer, answer.replace("\x00", "\ufffd"))


@pytest.mark.parametrize("auth", ["u:hunter2%zz", "u:hun#ter2", "u:hun?ter2", "u:hun/ter2", "u:hun@ter2",
                                  "u@"])
def test_a_password_typed_badly_into_the_url_is_never_shown(cli: CliRunner, auth: str) -> None:
    """libpq quotes a bad percent-encoded token back ('invalid percent-encoded token:
    "hunter2%zz"'), and a password holding '#', '?', '/' or '@' as typed was shown whole
    (the mask stopped at the first of them) or in part (the "port" or the "host")."""
    port = pg._free_port()
    url = (f"postgresql://{auth}127.0.0.1:{port}/cascade?password=ter2%zz" if auth == "u@"
           else f"postgresql://{auth}@127.0.0.1:{port}/cascade")
    run = cli("logs", "--db", url)
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert "ter2" not in run.stderr and "hun" not in run.stderr, run.stderr
    assert "***" in run.stderr


def test_a_role_without_create_on_a_new_ledger_is_one_line(cli: CliRunner, pg_server: pg.PgServer,
                                                           pg_url: str) -> None:
    if pg_server.external:
        pytest.skip("$CASCADE_TEST_PG_URL: roles are made only on a throwaway cluster")
    import uuid

    db = pg_url.split("?")[0].rsplit("/", 1)[1]
    role = f"nocreate_{uuid.uuid4().hex[:8]}"
    pg_server.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}'")
    pg_server.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC", db=db)
    run = cli("logs", "--db", pg_server.tcp_url(db, user=role, password=f"pw-{role}"))
    assert run.code == 1
    assert_one_error_line(run.stderr)  # was 'unexpected InsufficientPrivilege'
    assert "permission denied for schema public" in run.stderr and "allowed to CREATE" in run.stderr
    assert "unexpected" not in run.stderr


def test_a_column_dropped_by_hand_is_one_line_on_every_read(cli: CliRunner, pg_url: str) -> None:
    assert cli("ask", "What is the capital of France?", "--db", pg_url).code == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("alter table requests drop column latency_ms")
    out = cli.cwd / "copy.db"
    for args in (["export"], ["export", "--json"], ["logs"], ["usage"], ["ledger", "copy", pg_url, str(out)]):
        run = cli(*args) if args[0] == "ledger" else cli(*args, "--db", pg_url)
        assert "unexpected" not in run.stderr, (args, run.stderr)  # export was 'unexpected UndefinedColumn'
        if run.code:
            assert run.code == 1
            assert_one_error_line(run.stderr)
            assert "latency_ms" in run.stderr
