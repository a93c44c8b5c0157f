"""Both backends build the same ledger from the one schema module: the same tables with
the same columns (types as each dialect spells them), and PostgreSQL's migrations refuse a
newer schema and a database that is not ours."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cascadeflow_cli.errors import LedgerError, LedgerSchemaError
from cascadeflow_cli.ledger import schema
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.ledger.postgres import ddl, migrate

psycopg = pytest.importorskip("psycopg", reason="psycopg not installed: pip install -e '.[dev]'")

# how each dialect spells the schema's types (timestamps: ISO text on SQLite; the one array,
# a key's rpm window, a text column there that no SQLite ledger uses)
SQLITE = {"TEXT": schema.TEXT, "INTEGER": schema.INTEGER, "FLOAT": schema.REAL, "REAL": schema.REAL}
POSTGRES = {"text": schema.TEXT, "bigint": schema.INTEGER, "double precision": schema.REAL,
            "timestamp with time zone": schema.TEXT, "ARRAY": schema.TEXT}


def sqlite_tables(path: Path) -> dict[str, dict[str, str]]:
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute("select name from sqlite_master where type = 'table' "
                                            "and name not like 'sqlite_%'")]
        return {t: {r[1]: SQLITE[r[2].upper()] for r in conn.execute(f"pragma table_info([{t}])")}
                for t in names}
    finally:
        conn.close()


def postgres_tables(url: str) -> dict[str, dict[str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("select table_name, column_name, data_type from information_schema.columns "
                            "where table_schema = current_schema()").fetchall()
    out: dict[str, dict[str, str]] = {}
    for table, column, kind in rows:
        out.setdefault(table, {})[column] = POSTGRES[kind]
    return out


def test_both_backends_describe_the_same_tables_and_columns(tmp_path: Path, pg_url: str) -> None:
    open_ledger(tmp_path / "l.db").close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        migrate.migrate(conn, datetime.now(UTC), "test")
    lite, pg = sqlite_tables(tmp_path / "l.db"), postgres_tables(pg_url)
    assert set(lite) == set(pg) == {t.name for t in (*schema.TABLES, schema.MIGRATIONS_TABLE)}
    for table in schema.TABLES:
        assert lite[table.name] == pg[table.name] == {c.name: c.type for c in table.columns}, table.name


def test_every_timestamp_column_named_for_postgres_exists() -> None:
    columns = {(t.name, c.name) for t in (*schema.TABLES, schema.MIGRATIONS_TABLE) for c in t.columns}
    assert columns >= ddl.TIMESTAMPS | set(ddl.ARRAYS)


def test_migrating_twice_changes_nothing_and_a_newer_schema_is_refused(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert migrate.migrate(conn, datetime.now(UTC), "t") == list(schema.MIGRATION_NAMES)
        assert migrate.migrate(conn, datetime.now(UTC), "t") == []
        conn.execute("insert into _migrations values (999, '999_from_the_future', now())")
        with pytest.raises(LedgerSchemaError, match=r"newer than this cascade .*999_from_the_future"):
            migrate.migrate(conn, datetime.now(UTC), "t")


def test_a_database_with_tables_of_the_same_names_is_not_taken_over(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("create table requests (id int, note text)")
        with pytest.raises(LedgerError, match=r"not a cascade ledger: .*requests"):
            migrate.migrate(conn, datetime.now(UTC), "t")
        assert conn.execute("select to_regclass('_migrations') is null").fetchone() == (True,)
