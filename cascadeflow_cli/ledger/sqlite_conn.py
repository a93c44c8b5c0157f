"""The few conveniences the ledger takes over a ``sqlite3.Connection``.

This replaces sqlite-utils, of which the ledger used four calls (``execute``, ``query``,
``close`` and a table's ``upsert``). Importing sqlite-utils cost every ledger command about
275M instructions under callgrind (its module body, pluggy and the plugin hooks), about 30%
of all of ``cascade usage``; this module costs a few hundred thousand.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

Params = Sequence[Any] | Mapping[str, Any]

_TRANSACTION_WORDS = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"})


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@lru_cache(maxsize=128)
def insert_sql(table: str, columns: tuple[str, ...], verb: str = "insert", rows: int = 1,
               tail: str = "") -> str:
    """``verb into table (columns) values (?, ...)``, ``rows`` tuples of marks, then ``tail``
    (an ON CONFLICT clause). Cached: the ledger writes the same few shapes on every request,
    and building the text per row was a sixth of a batch row's CPU under the GIL."""
    row = f"({', '.join('?' * len(columns))})"
    names = ", ".join(_quote(c) for c in columns)
    return f"{verb} into {_quote(table)} ({names}) values {', '.join([row] * rows)}{tail}"


def _first_word(sql: str) -> str:
    return sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""


class Database:
    """One connection; ``execute`` commits a lone write the way sqlite-utils did, so a
    statement outside ``Ledger.write()`` never leaves an implicit transaction open."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Params | None = None) -> sqlite3.Cursor:
        conn = self.conn
        was_open = conn.in_transaction
        try:
            cursor = conn.execute(sql) if params is None else conn.execute(sql, params)
        except BaseException:
            if not was_open and conn.in_transaction:
                conn.execute("ROLLBACK")  # the failed statement's implicit transaction
            raise
        if (not was_open and conn.in_transaction and cursor.description is None
                and _first_word(sql) not in _TRANSACTION_WORDS):
            conn.execute("COMMIT")
        return cursor

    def query(self, sql: str, params: Params | None = None) -> Iterator[dict[str, Any]]:
        """The rows of a SELECT as dicts keyed by column name."""
        cursor = self.execute(sql, params)
        if cursor.description is None:
            raise ValueError("query() needs a statement that returns rows")
        keys = [d[0] for d in cursor.description]
        return (dict(zip(keys, row, strict=True)) for row in cursor)

    def __getitem__(self, table: str) -> Table:
        return Table(self, table)

    def close(self) -> None:
        self.conn.close()


class Table:
    """One table by name: inserts by column name, its rows and their count (tests and
    benches fill and read ledgers with it)."""

    def __init__(self, db: Database, name: str) -> None:
        self.db = db
        self.name = name

    @property
    def count(self) -> int:
        return int(self.db.execute(f"SELECT count(*) FROM {_quote(self.name)}").fetchone()[0])

    @property
    def rows(self) -> Iterator[dict[str, Any]]:
        return self.db.query(f"SELECT * FROM {_quote(self.name)}")

    def insert(self, row: Mapping[str, Any]) -> None:
        self.db.execute(insert_sql(self.name, tuple(row)), list(row.values()))

    def insert_all(self, rows: Iterable[Mapping[str, Any]], batch_size: int = 1000) -> None:
        """Rows of the same columns, ``batch_size`` per transaction."""
        batch: list[Mapping[str, Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= batch_size:
                self._write(batch)
                batch = []
        if batch:
            self._write(batch)

    def _write(self, batch: list[Mapping[str, Any]]) -> None:
        columns = list(batch[0])
        sql, values = insert_sql(self.name, tuple(columns)), [[r[c] for c in columns] for r in batch]
        conn = self.db.conn
        if conn.in_transaction:  # inside the caller's transaction: theirs to commit
            conn.executemany(sql, values)
            return
        with conn:  # one transaction per batch; commits, or rolls back on error
            conn.executemany(sql, values)

    def upsert(self, row: Mapping[str, Any], pk: str) -> None:
        """Insert ``row``, or update its other columns where the ``pk`` value exists."""
        others = [c for c in row if c != pk]
        update = ", ".join(f"{_quote(c)} = excluded.{_quote(c)}" for c in others)
        conflict = f" ON CONFLICT({_quote(pk)}) DO " + (f"UPDATE SET {update}" if others else "NOTHING")
        self.db.execute(insert_sql(self.name, tuple(row), tail=conflict), list(row.values()))
