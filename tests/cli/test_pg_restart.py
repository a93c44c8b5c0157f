"""PostgreSQL restarted, its backends terminated, or away for good while `cascade batch`
or `cascade ask` runs (hostile-26): each row asked once however often the command is run
again, every call the provider answered in the ledger (or in the journal, exit 4, until a
command can write it), one line when the command must stop. Most held already; but a
`pg_ctl restart` stopped a batch with exit 4 at its first statement while the server was
away: a lost connection is now made again for up to 10 s (ledger/postgres/connection.py)."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests import pg_server as pg
from tests.cli.support import wait_until
from tests.conftest import GOOD_ANSWER, CliRunner, assert_one_error_line

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[dev]'")


def _name(url: str) -> str:
    return url.split("/")[-1].split("?")[0]


def _terminate(pg_server: pg.PgServer, url: str) -> None:
    pg_server.execute("select pg_terminate_backend(pid) from pg_stat_activity "
                      f"where datname = '{_name(url)}' and pid <> pg_backend_pid()")


def _restart(pg_server: pg.PgServer) -> None:
    if pg_server.root is None or pg_server.bin_dir is None:
        pytest.skip("$CASCADE_TEST_PG_URL: only a throwaway cluster is restarted")
    subprocess.run([*pg_server._as_postgres, str(pg_server.bin_dir / "pg_ctl"), "-D",
                    str(pg_server.root / "data"), "-l", str(pg_server.root / "server.log"),
                    "-m", "fast", "-w", "-t", "60", "restart"],  # keeps the start's options
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=90)


def _go_away(pg_server: pg.PgServer, url: str) -> None:
    """The database unreachable until _come_back (a server down for longer than a command)."""
    name = _name(url)
    # no new sessions first: the command reconnects (for up to 10 s) between the terminate
    # and the rename, and a rename with a session open fails (ObjectInUse)
    pg_server.execute(f'alter database "{name}" with allow_connections false')
    _terminate(pg_server, url)
    pg_server.execute(f'alter database "{name}" rename to "{name}_away"')
    pg_server.execute(f'alter database "{name}_away" with allow_connections true')


def _come_back(pg_server: pg.PgServer, url: str) -> None:
    pg_server.execute(f'alter database "{_name(url)}_away" rename to "{_name(url)}"')


def _fault(how: str, pg_server: pg.PgServer, url: str) -> None:
    if how == "terminate":
        _terminate(pg_server, url)
    elif how == "restart":
        _restart(pg_server)
    else:
        _go_away(pg_server, url)


def _fault_and_finish(proc: subprocess.Popen[str], how: str, pg_server: pg.PgServer,
                      url: str) -> tuple[str, str]:
    """``how`` done to the database while ``proc`` runs; its stdout and stderr once it ends
    (a database sent away is brought back either way, for the checks after)."""
    _fault(how, pg_server, url)
    try:
        return proc.communicate(timeout=120)
    finally:
        if how == "away":
            _come_back(pg_server, url)


def _table(url: str, table: str) -> list[dict[str, object]]:
    with psycopg.connect(url) as conn:
        cur = conn.execute(f"select * from {table}")
        names = [d.name for d in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _ledger_holds_what_was_paid(url: str, asked: int) -> None:
    calls = _table(url, "calls")
    assert len(calls) == asked, (len(calls), asked)  # every call the provider answered, once
    assert all(int(str(c["cost_nusd"])) > 0 for c in calls)
    requests = _table(url, "requests")
    assert sum(int(str(r["cost_nusd"])) for r in requests) == sum(int(str(c["cost_nusd"])) for c in calls)
    assert _table(url, "reservations") == []  # each settled, none left holding budget


@pytest.mark.parametrize("how", ["terminate", "restart", "away"])
def test_a_batch_whose_database_restarts_stays_exactly_once(
    cli: CliRunner, server: ReplayServer, pg_server: pg.PgServer, pg_url: str, tmp_path: Path, how: str
) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, latency_s=0.1))
    ids = [f"q{i:03d}" for i in range(60)]
    (tmp_path / "in.jsonl").write_text("".join(
        json.dumps({"id": i, "query": f"What is the capital of France? ({i})"}) + "\n" for i in ids))
    out = tmp_path / "out.jsonl"
    proc = cli.popen("batch", "in.jsonl", "-o", "out.jsonl", "-c", "4", "--db", pg_url)
    wait_until(lambda: out.exists() and out.read_bytes().count(b"\n") >= 8)
    _, stderr = _fault_and_finish(proc, how, pg_server, pg_url)
    if how == "away":  # CLI.md: exit 4, the rows paid for and not recorded wait in the journal
        assert proc.returncode == 4, stderr
        assert_one_error_line(stderr.splitlines()[-1])  # after the progress line it shows in 10 s
        assert "Traceback" not in stderr
        assert "answered, but not recorded" in stderr and "--resume" in stderr
        assert len(server.requests) < len(ids)
    else:  # a restart is waited out (connection.RECONNECT_WAIT_S): it stopped with exit 4
        assert proc.returncode == 0, stderr
        assert len(server.requests) == len(ids)
    again = cli("batch", "in.jsonl", "-o", "out.jsonl", "-c", "4", "--resume", "--db", pg_url)
    assert again.code == 0, again.stderr
    written = Counter(json.loads(line)["id"] for line in out.read_text().splitlines() if line.strip())
    assert written == Counter(ids)
    requests = _table(pg_url, "requests")
    assert Counter(str(r["external_id"]).split(":", 1)[1] for r in requests) == Counter(ids)
    assert {r["status"] for r in requests} == {"ok"}
    assert len(server.requests) == len(ids)  # no row was asked twice: nothing paid twice
    _ledger_holds_what_was_paid(pg_url, len(server.requests))


@pytest.mark.parametrize("how", ["terminate", "restart", "away"])
def test_ask_whose_database_goes_away_between_reservation_and_settlement(
    cli: CliRunner, server: ReplayServer, pg_server: pg.PgServer, pg_url: str, how: str
) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, latency_s=1.5))
    proc = cli.popen("ask", "What is the capital of France?", "--db", pg_url)
    wait_until(lambda: len(server.requests) >= 1)  # reserved, and the call is in flight
    out, err = _fault_and_finish(proc, how, pg_server, pg_url)
    assert GOOD_ANSWER in out  # the paid answer is shown either way
    if how == "away":
        assert proc.returncode == 4, err
        assert_one_error_line(err.splitlines()[-1])
        assert "answered, but not recorded" in err and "journal" in err
        assert _table(pg_url, "requests") == []
        assert cli("logs", "--db", pg_url).code == 0  # the next command records it
    else:
        assert proc.returncode == 0, err
    [request] = _table(pg_url, "requests")
    assert request["status"] == "ok"
    _ledger_holds_what_was_paid(pg_url, len(server.requests))
