"""pytest fixtures for a real PostgreSQL server (a plugin loaded by tests/conftest.py).

- ``pg_server``: one throwaway cluster for the session (tests/pg_server.py), started the
  first time a test asks for it. Without PostgreSQL those tests are skipped with the
  reason (listed by ``-rs`` and in the report header); with ``CASCADE_REQUIRE_PG=1`` (set
  by .ci/run) a missing server fails them instead, so CI can never go green by skipping.
- ``pg_url``: a fresh, empty database on it for one test, dropped afterwards (for tests
  of what happens to a database: migrations, foreign tables, permissions).
- ``pg_ledger_url``: an empty, migrated ledger: one database for the whole session,
  every table truncated before each test (a TRUNCATE is ~100x cheaper than a database).
- ``ledger_url``: parametrised over both backends: a ledger file path for SQLite,
  ``pg_ledger_url`` for PostgreSQL. Tests that take it run twice.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import pg_server as pg

BACKENDS = ("sqlite", "postgresql")
_state: dict[str, object] = {}


def _server() -> pg.PgServer:
    """The session's server, started once; raises pg.Unavailable (remembered) if none."""
    if "server" not in _state:
        try:
            _state["server"] = pg.start()
        except pg.Unavailable as exc:
            _state["server"] = exc
    server = _state["server"]
    if isinstance(server, pg.Unavailable):
        raise server
    assert isinstance(server, pg.PgServer)
    return server


def pytest_report_header(config: pytest.Config) -> str:
    if os.environ.get("CASCADE_TEST_PG_URL"):
        return "postgresql: $CASCADE_TEST_PG_URL"
    try:
        return f"postgresql: {pg.find_bin_dir()} (a throwaway cluster is started on first use)"
    except pg.Unavailable as exc:
        return f"postgresql: NOT AVAILABLE, the PostgreSQL half of the tests is skipped: {exc}"


def pytest_sessionfinish(session: pytest.Session) -> None:
    server = _state.pop("server", None)
    if isinstance(server, pg.PgServer):
        server.stop()


@pytest.fixture(scope="session")
def pg_server() -> pg.PgServer:
    try:
        return _server()
    except pg.Unavailable as exc:
        if os.environ.get("CASCADE_REQUIRE_PG") == "1":
            pytest.fail(f"CASCADE_REQUIRE_PG=1 but {exc}")
        pytest.skip(f"PostgreSQL not available: {exc}")


@pytest.fixture
def pg_url(pg_server: pg.PgServer) -> Iterator[str]:
    name = pg_server.create_database()
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


def empty_ledger(url: str) -> None:
    """Empty every ledger table of the database at ``url``. Connections a previous test
    left open are ended first (waited for), so the TRUNCATE never waits on their locks."""
    import psycopg

    from cascadeflow_cli.ledger import schema

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select pg_terminate_backend(pid, 5000) from pg_stat_activity "
                     "where datname = current_database() and pid <> pg_backend_pid()")
        conn.execute("truncate " + ", ".join(f'"{t.name}"' for t in schema.TABLES))


def table_rows(location: str | Path, table: str) -> list[dict[str, object]]:
    """A ledger table's rows in insertion order, on either backend (SQLite: by rowid;
    PostgreSQL: by ctid, which is insertion order for rows never updated, as tests' are)."""
    if not str(location).startswith("postgresql"):
        from tests.conftest import ledger_rows

        return ledger_rows(Path(location), table) if Path(location).exists() else []
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(str(location), row_factory=dict_row) as conn:
        return conn.execute(f'select * from "{table}" order by ctid').fetchall()  # type: ignore[arg-type,return-value]


@pytest.fixture(scope="session")
def pg_shared_url(pg_server: pg.PgServer) -> str:
    """The session's ledger database, migrated once."""
    from datetime import UTC, datetime

    import psycopg

    from cascadeflow_cli.ledger.postgres import migrate

    url = pg_server.url(pg_server.create_database("ledger"))
    with psycopg.connect(url, autocommit=True) as conn:
        migrate.migrate(conn, datetime.now(UTC), "tests")
    return url


@pytest.fixture
def pg_ledger_url(pg_shared_url: str) -> str:
    empty_ledger(pg_shared_url)
    return pg_shared_url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ledger_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Where a test's ledger lives: a file for SQLite, the emptied shared database for
    PostgreSQL."""
    if backend == "sqlite":
        return str(tmp_path / "ledger.db")
    return str(request.getfixturevalue("pg_ledger_url"))
