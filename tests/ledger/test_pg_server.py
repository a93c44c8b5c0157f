"""The throwaway PostgreSQL server of the test session: it answers, each test gets its own
database, and password authentication is real (the wrong-password tests rely on it)."""

from __future__ import annotations

import pytest

from tests import pg_server as pg

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[dev]'")


def test_each_test_gets_an_empty_database_of_its_own(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute("select count(*) from pg_tables where schemaname = 'public'").fetchone()
        name = conn.execute("select current_database()").fetchone()
    assert tables == (0,)
    assert name is not None and name[0].startswith("t_")


def test_tcp_login_needs_the_right_password(pg_server: pg.PgServer, pg_url: str) -> None:
    if pg_server.external:
        pytest.skip("$CASCADE_TEST_PG_URL: the password role is ours only on a throwaway cluster")
    db = pg_url.split("?")[0].rsplit("/", 1)[1]
    with psycopg.connect(pg_server.tcp_url(db, password=pg.PASSWORD)) as conn:
        assert conn.execute("select current_user").fetchone() == (pg.PASSWORD_ROLE,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg_server.tcp_url(db, password="wrong"))
