"""The budget check's SQL on PostgreSQL: per-user serialisation, the spend of every window
and the in-flight reservations read in one statement, reservations and their expiry.

Why a transaction-scoped advisory lock keyed by user (and by team), not a row lock on the
user's ``budgets`` row: a user checked against ``[budgets.default]`` or a team budget has no
row to lock, and creating one just to lock it would write on every check. The advisory
lock needs no row, blocks only another check of the same user (never a reader or another
user), and is released by COMMIT or ROLLBACK, so a crashed host cannot leave it held.
Several keys (a user and their teams) are taken in one global order, so two checks never
wait on each other in a cycle.

Why one statement for the state: under READ COMMITTED each statement sees its own
snapshot. Reading spend and reservations in two statements could straddle another
request's settlement (its reservation gone in the second read, its cost not yet in the
first) and undercount by that request. One statement sees the settlement whole or not
at all; the lock makes sure no other check reserves in between.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.ledger.budgets import BUCKET_MINUTES
from cascadeflow_cli.ledger.postgres.keys import PgKeyTxn
from cascadeflow_cli.windows import WINDOWS

if TYPE_CHECKING:
    import psycopg

    from cascadeflow_cli.windows import Window


def lock_key(kind: str, name: str) -> int:
    """A stable signed 64-bit advisory-lock key (a collision only serialises two users)."""
    digest = hashlib.blake2b(f"cascade:{kind}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock(conn: psycopg.Connection[Any], keys: Sequence[int]) -> None:
    """Hold every key until this transaction ends, taken in ascending order."""
    for key in sorted(set(keys)):
        conn.execute("select pg_advisory_xact_lock(%s)", [key])


@dataclass(frozen=True)
class Span:
    """A window to sum: [start, end), end None for the total."""

    start: datetime
    end: datetime | None


def _aligned(moment: datetime) -> bool:
    return moment.minute % BUCKET_MINUTES == 0 and moment.second == 0 and moment.microsecond == 0


def spend_sql(span: Span) -> str:
    """A scalar subquery: the spend of the users (parameter 1) inside ``span`` (parameters
    2 and 3), from the aggregates when the window is on bucket boundaries (every real
    zone's midnight is), else from the rows."""
    if span.end is None:
        return 'coalesce((select sum(cost_nusd) from spend_totals where "user" = any(%s)), 0)'
    table = "spend_buckets" if _aligned(span.start) and _aligned(span.end) else "requests"
    column = "bucket" if table == "spend_buckets" else "ts"
    return (f'coalesce((select sum(cost_nusd) from {table} where "user" = any(%s) '
            f"and {column} >= %s and {column} < %s), 0)")


def read_state(conn: psycopg.Connection[Any], groups: Sequence[tuple[Sequence[str], Sequence[Span]]]
               ) -> list[tuple[list[int], int]]:
    """For each (users, spans): the users' spend in each span and their reservations,
    all from one snapshot. Returns [(spend per span, reserved)] in the order asked."""
    parts: list[str] = []
    params: list[Any] = []
    for users, spans in groups:
        for span in spans:
            parts.append(spend_sql(span))
            params.append(list(users))
            if span.end is not None:
                params.extend([span.start, span.end])
        parts.append('coalesce((select sum(amount_nusd) from reservations where "user" = any(%s)), 0)')
        params.append(list(users))
    row = conn.execute(f"select {', '.join(parts)}", params).fetchone()
    assert row is not None
    values = [int(v) for v in row]
    out, at = [], 0
    for _users, spans in groups:
        out.append((values[at:at + len(spans)], values[at + len(spans)]))
        at += len(spans) + 1
    return out


RESERVED_SQL = 'select coalesce(sum(amount_nusd), 0) from reservations where "user" = %s'


class PgBudgetTransaction(PgKeyTxn):
    """Reads and writes inside ``budget_lock``. Reservations are read before spend, once
    per user: a settlement committing between the two reads is then counted twice at
    worst (a transient overestimate), never missed (see the module docstring)."""

    def __init__(self, conn: psycopg.Connection[Any], host: str) -> None:
        self.conn = conn
        self.host = host
        self._reserved: dict[str, int] = {}

    def reserved_spend(self, user: str) -> int:
        if user not in self._reserved:
            row = self.conn.execute(RESERVED_SQL, [user]).fetchone()
            self._reserved[user] = int(row[0]) if row else 0
        return self._reserved[user]

    def window_spend(self, user: str, win: Window) -> int:
        self.reserved_spend(user)  # first: see the class docstring
        span = Span(win.start, win.end)
        row = self.conn.execute(f"select {spend_sql(span)}",
                                [[user]] + ([] if win.end is None else [win.start, win.end])).fetchone()
        return int(row[0]) if row else 0

    def request_count(self, user: str) -> int:
        row = self.conn.execute('select coalesce(max(requests), 0) from spend_totals where "user" = %s',
                                [user]).fetchone()
        return int(row[0]) if row else 0

    def expire_reservations(self, now: datetime) -> int:
        """Past their deadline (the database's clock), or made on this host by a process
        that is gone. Another host's pids are not ours to judge."""
        from cascadeflow_cli.ledger.enforcement import _alive

        dead = [rid for rid, pid in self.conn.execute(
            "select id, pid from reservations where host = %s", [self.host]).fetchall() if not _alive(pid)]
        cur = self.conn.execute("delete from reservations where expires_at <= %s or id = any(%s)",
                                [now, dead])
        self._reserved.clear()
        return cur.rowcount

    def reserve(self, hold: Any) -> None:
        self.conn.execute(
            'insert into reservations (id, "user", request_id, amount_nusd, created_at, expires_at, '
            "pid, host) values (%s, %s, %s, %s, %s, %s, %s, %s) on conflict (id) do nothing",
            [hold.id, hold.user, hold.request_id, hold.amount_nusd, hold.created_at, hold.expires_at,
             hold.pid, hold.host])
        self._reserved.pop(hold.user, None)

    def first_warning(self, user: str, window: str, window_start: str, threshold: str, now: datetime) -> bool:
        cur = self.conn.execute(
            'insert into budget_warnings ("user", "window", window_start, threshold, warned_at) '
            "values (%s, %s, %s, %s, %s) on conflict do nothing",
            [user, window, window_start, threshold, now])
        return cur.rowcount == 1


LIMIT_COLUMNS = tuple(f"{w}_nusd" for w in WINDOWS)
