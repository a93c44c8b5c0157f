"""Migrations on PostgreSQL: the schema module's migrations, in order, each in its own
transaction, under a transaction-scoped advisory lock so that two hosts starting on a new
database together do not both create the tables. A database whose ``_migrations`` holds a
name this cascade does not know was migrated by a newer one: refused, untouched."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.errors import LedgerError, LedgerSchemaError
from cascadeflow_cli.ledger import schema
from cascadeflow_cli.ledger.postgres import ddl
from cascadeflow_cli.ledger.postgres.connection import _psycopg, one_line

if TYPE_CHECKING:
    import psycopg

MIGRATION_LOCK = 0x6361_7363_6164_6501  # "cascade\x01": one key for every cascade ledger


def applied(conn: psycopg.Connection[Any]) -> list[str]:
    """Names in ``_migrations`` (empty for a database we never touched)."""
    exists = conn.execute("select to_regclass('_migrations') is not null").fetchone()
    if not exists or not exists[0]:
        return []
    return [r[0] for r in conn.execute("select name from _migrations order by id").fetchall()]


def check_not_newer(done: list[str], where: str) -> None:
    unknown = [n for n in done if n not in schema.MIGRATION_NAMES]
    if unknown:
        raise LedgerSchemaError(f"{where}: the ledger's schema is newer than this cascade "
                                f"(migration {unknown[0]}); upgrade cascade (the ledger is left untouched)")


def foreign_tables(conn: psycopg.Connection[Any]) -> list[str]:
    """Our table names already taken in a database with no ``_migrations``: not ours."""
    names = [t.name for t in schema.TABLES]
    rows = conn.execute("select tablename from pg_tables where schemaname = current_schema() "
                        "and tablename = any(%s) order by 1", [names]).fetchall()
    return [r[0] for r in rows]


def migrate(conn: psycopg.Connection[Any], now: datetime, where: str) -> list[str]:
    """Bring the database up to date; returns the migrations applied now. The database's
    refusal (a role without CREATE on the schema) is one line, not 'unexpected ...'."""
    try:
        return _migrate(conn, now, where)
    except _psycopg().Error as exc:
        hint = ("; a new ledger's tables are created by the first command, which needs a role "
                "allowed to CREATE in the schema" if getattr(exc, "sqlstate", None) == "42501" else "")
        raise LedgerError(f"{where}: cannot migrate the ledger: {one_line(exc)}{hint}") from None


def _migrate(conn: psycopg.Connection[Any], now: datetime, where: str) -> list[str]:
    done = applied(conn)
    check_not_newer(done, where)
    if len(done) == len(schema.MIGRATION_NAMES):
        return []  # the common case: one query, no lock
    ran: list[str] = []
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", [MIGRATION_LOCK])
        conn.execute(ddl.MIGRATIONS_TABLE_DDL)
        done = applied(conn)  # again, under the lock: another host may have just done it
        check_not_newer(done, where)
        if not done:
            taken = foreign_tables(conn)
            if taken:
                raise LedgerError(f"{where}: not a cascade ledger: the database already has table(s) "
                                  f"{', '.join(taken)} and no cascade migrations; use another database")
        for number, name in enumerate(schema.MIGRATION_NAMES, start=1):
            if name in done:
                continue
            for sql in ddl.migration_ddl(name):
                conn.execute(sql)  # type: ignore[arg-type]  # our own DDL, no parameters
            conn.execute("insert into _migrations (id, name, applied_at) values (%s, %s, %s)",
                         [number, name, now])
            ran.append(name)
    return ran
