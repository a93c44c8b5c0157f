"""The SQLite backend's API-key queries (`cascade key`, `cascade serve`), mixed into
``ledger.db.Ledger`` and its budget transaction; the policy is in ledger/keys.py."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.clock import format_ts
from cascadeflow_cli.ledger.sql import money_sum_sql
from cascadeflow_cli.money import nanos

if TYPE_CHECKING:
    from cascadeflow_cli.ledger.sqlite_conn import Database
    from cascadeflow_cli.windows import Window


def _dicts(cursor: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class SqliteKeyQueries:
    """``api_keys`` reads and writes over ``self.db`` and ``self.write()`` (Ledger's)."""

    db: Database
    write: Callable[[], AbstractContextManager[Database]]

    def insert_api_key(self, row: dict[str, Any]) -> bool:
        """False when the prefix is taken (the caller draws another)."""
        with self.write() as db:
            if db.conn.execute("select 1 from api_keys where prefix = ?", [row["prefix"]]).fetchone():
                return False
            names = ", ".join(f"[{n}]" for n in row)
            db.conn.execute(f"insert into api_keys ({names}) values ({', '.join('?' * len(row))})",
                            list(row.values()))
        return True

    def api_keys(self, user: str | None = None) -> list[dict[str, Any]]:
        sql = "select * from api_keys" + (" where user = ?" if user else "") + " order by created_at, prefix"
        return _dicts(self.db.conn.execute(sql, [user] if user else []))

    def revoke_api_key(self, prefix: str, now: str) -> dict[str, Any] | None:
        with self.write() as db:
            db.conn.execute("update api_keys set revoked_at = coalesce(revoked_at, ?) where prefix = ?",
                            [now, prefix])
            rows = _dicts(db.conn.execute("select * from api_keys where prefix = ?", [prefix]))
        return rows[0] if rows else None

    def api_key_by_hash(self, key_hash: str) -> dict[str, Any] | None:
        """The active key with this hash (per request: a plain execute, no savepoint)."""
        rows = _dicts(self.db.conn.execute(
            "select * from api_keys where key_hash = ? and revoked_at is null", [key_hash]))
        return rows[0] if rows else None

    def api_key_active(self, prefix: str) -> bool:
        """Whether the key ``prefix`` exists and is not revoked (a cached key's check)."""
        return key_active(self.db, prefix)


def key_active(db: Database, prefix: str) -> bool:
    row = db.conn.execute("select 1 from api_keys where prefix = ? and revoked_at is null", [prefix])
    return row.fetchone() is not None


class SqliteKeyTxn:
    """A key's spend inside the budget transaction (``BudgetTxn``'s ``self.db``)."""

    db: Database

    def key_window_spend(self, prefix: str, win: Window) -> int:
        sql = (f"select {money_sum_sql('r.cost_nusd')} from api_key_requests k "
               "join requests r on r.id = k.request_id where k.prefix = ?")
        params: list[Any] = [prefix]
        if win.end is not None:
            sql += " and r.ts >= ? and r.ts < ?"
            params += [format_ts(win.start), format_ts(win.end)]
        return nanos(self.db.conn.execute(sql, params).fetchone()[0])

    def key_reserved_spend(self, prefix: str) -> int:
        # CROSS JOIN: SQLite keeps this order, the few reservations in flight first
        sql = (f"select {money_sum_sql('v.amount_nusd')} from reservations v "
               "cross join api_key_requests k on k.request_id = v.request_id where k.prefix = ?")
        return nanos(self.db.conn.execute(sql, [prefix]).fetchone()[0])

    def api_key_active(self, prefix: str) -> bool:
        return key_active(self.db, prefix)

    def link_key(self, prefix: str, request_id: str) -> None:
        self.db.conn.execute("insert or ignore into api_key_requests (request_id, prefix) values (?, ?)",
                             [request_id, prefix])
