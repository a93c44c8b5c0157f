"""The DDL both backends run, generated from the tables ledger/schema.py declares: each
migration's CREATE TABLE / ADD COLUMN / CREATE INDEX statements, in a dialect's
``DdlStyle`` (SQLite's here; PostgreSQL's in ledger/postgres/ddl.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cascadeflow_cli.ledger.schema import INTEGER, REAL, TABLES, TEXT, Column, Table

SQLITE_TYPES = {TEXT: "TEXT", INTEGER: "INTEGER", REAL: "FLOAT"}  # what sqlite-utils wrote in 001


@dataclass(frozen=True)
class DdlStyle:
    """How one SQL dialect spells the (shared) DDL: identifier quoting, each column's type,
    and whether a table may be WITHOUT ROWID (SQLite's; others have no rowid to drop)."""

    quote: Callable[[str], str]
    column_type: Callable[[Table, Column], str]
    without_rowid: bool = False


def _bracket(name: str) -> str:
    return f"[{name}]"


def _sqlite_type(table: Table, column: Column) -> str:
    return SQLITE_TYPES[column.type]


SQLITE_DDL = DdlStyle(_bracket, _sqlite_type, without_rowid=True)


def _column_sql(table: Table, c: Column, style: DdlStyle, inline_pk: bool) -> str:
    q = style.quote
    sql = f"{q(c.name)} {style.column_type(table, c)}"
    if inline_pk:
        sql += " PRIMARY KEY"
    elif c.not_null:
        sql += " NOT NULL"
    if c.default is not None:
        sql += f" DEFAULT {c.default}"
    if c.references:
        ref_table, _, ref_column = c.references.partition("(")
        sql += f" REFERENCES {q(ref_table)}({q(ref_column.rstrip(')'))})"
    return sql


def table_ddl(table: Table, migration: str, style: DdlStyle = SQLITE_DDL) -> list[str]:
    """The statements ``migration`` runs for ``table``: CREATE TABLE with the columns of
    that migration (when it made the table), else ADD COLUMN for those it added; then its
    indexes. In ``style``'s dialect (SQLite's by default; ledger/postgres/ddl.py has PostgreSQL's)."""
    q = style.quote
    out: list[str] = []
    mine = [c for c in table.columns if (c.since or table.since) == migration]
    if table.since == migration:
        single = len(table.primary_key) == 1
        parts = [_column_sql(table, c, style, single and c.name == table.primary_key[0]) for c in mine]
        if not single:
            parts.append(f"PRIMARY KEY ({', '.join(q(n) for n in table.primary_key)})")
        tail = " WITHOUT ROWID" if table.without_rowid and style.without_rowid else ""
        out.append(f"CREATE TABLE {q(table.name)} ({', '.join(parts)}){tail}")
    else:
        out += [f"ALTER TABLE {q(table.name)} ADD COLUMN {_column_sql(table, c, style, False)}" for c in mine]
    for index in table.indexes:
        if index.since == migration:
            name = index.name or f"idx_{table.name}_{'_'.join(index.columns)}"
            unique = "UNIQUE " if index.unique else ""
            cols = ", ".join(q(c) for c in index.columns)
            out.append(f"CREATE {unique}INDEX {q(name)} ON {q(table.name)} ({cols})")
    return out


def migration_ddl(migration: str, style: DdlStyle = SQLITE_DDL) -> list[str]:
    """Every table statement of ``migration``, tables in dependency order."""
    return [sql for table in TABLES for sql in table_ddl(table, migration, style)]
