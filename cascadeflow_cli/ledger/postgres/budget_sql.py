"""The budget check's SQL on PostgreSQL: per-user serialisation, the spend of every window
of a user and their teams and the in-flight reservations read in one statement,
reservations and their expiry, in two round trips (see PgBudgetTransaction).

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

import contextlib
import hashlib
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.ledger.budgets import BUCKET_MINUTES
from cascadeflow_cli.ledger.postgres.keys import PgKeyTxn
from cascadeflow_cli.ledger.storage import SpendAsk, SpendState
from cascadeflow_cli.windows import WINDOWS

if TYPE_CHECKING:
    import psycopg

    from cascadeflow_cli.windows import Window


def lock_key(kind: str, name: str) -> int:
    """A stable signed 64-bit advisory-lock key (a collision only serialises two users)."""
    digest = hashlib.blake2b(f"cascade:{kind}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


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


RESERVED_SQL = 'coalesce((select sum(amount_nusd) from reservations where "user" = any(%s)), 0)'
# this host's reservations, to find those of dead processes (ids and pids, in one order)
HOST_HOLDS_SQL = ("(select array_agg(id order by id) from reservations where host = %s), "
                  "(select array_agg(pid order by id) from reservations where host = %s), "
                  "(select array_agg(extract(epoch from expires_at)::float8 order by id) from reservations "
                  "where host = %s)")


def state_sql(asks: Sequence[SpendAsk], host: str | None = None) -> tuple[str, list[Any]]:
    """One SELECT answering every ask (spend per window, then reservations, per ask), and
    with ``host`` that host's reservations (ids, pids, expiries) last."""
    parts: list[str] = []
    params: list[Any] = []
    for ask in asks:
        users = list(ask.users)
        for win in ask.windows:
            parts.append(spend_sql(Span(win.start, win.end)))
            params.append(users)
            if win.end is not None:
                params.extend([win.start, win.end])
        parts.append(RESERVED_SQL)
        params.append(users)
    if host is not None:
        parts.append(HOST_HOLDS_SQL)
        params.extend([host, host, host])
    return f"select {', '.join(parts) or 'null'}", params


def unpack_state(row: Sequence[Any], asks: Sequence[SpendAsk]) -> list[SpendState]:
    out, at = [], 0
    for ask in asks:
        n = len(ask.windows)
        out.append(SpendState(tuple(int(v) for v in row[at:at + n]), int(row[at + n])))
        at += n + 1
    return out


def read_state(conn: psycopg.Connection[Any], asks: Sequence[SpendAsk]) -> list[SpendState]:
    """Every ask from one snapshot (one statement)."""
    sql, params = state_sql(asks)
    row = conn.execute(sql, params).fetchone()  # type: ignore[arg-type]  # built from our own parts
    assert row is not None
    return unpack_state(row, asks)


LOCK_SQL = "select pg_advisory_xact_lock(%s)"
# per connection: the statements PREPAREd on it, and a generation that renames them all
# after an error (a failed multi-statement query may or may not have prepared its own)
_PREPARED: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
_GENERATION: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def _statement_name(sql: str, generation: int = 0) -> str:
    return f"cascade_{hashlib.blake2b(sql.encode(), digest_size=8).hexdigest()}_{generation}"


def _numbered(sql: str) -> str:
    """``%s`` parameters as PREPARE's ``$1, $2, ...``."""
    parts = sql.split("%s")
    return "".join(p + (f"${i}" if i < len(parts) else "") for i, p in enumerate(parts, start=1))


# another host's reservations past their deadline; this host's are judged by liveness (stale_here)
EXPIRE_SQL = "delete from reservations where expires_at <= %s and host is distinct from %s"
REQUESTS_SQL = 'select coalesce(max(requests), 0) from spend_totals where "user" = %s'
RESERVE_SQL = ('insert into reservations (id, "user", request_id, amount_nusd, created_at, expires_at, '
               "pid, host) values (%s, %s, %s, %s, %s, %s, %s, %s) on conflict (id) do nothing")
WARNING_SQL = ('insert into budget_warnings ("user", "window", window_start, threshold, warned_at) '
               "values (%s, %s, %s, %s, %s) on conflict do nothing")


class PgBudgetTransaction(PgKeyTxn):
    """Reads and writes inside ``budget_lock``, in as few round trips as the decision
    allows: each round trip costs a scheduling of the server, milliseconds on a loaded host.

    Statements whose answer nobody waits for (BEGIN, the locks, the expiry, the
    reservation) are queued and go with the next one that has an answer, as one
    multi-statement query (parameters as literals: only the simple protocol carries
    several statements). Each statement of it still takes its own snapshot, so the read
    after the locks sees every check that held them before. A check is then one round
    trip (BEGIN, locks, expiry, the state of every window of the user and their teams)
    and its reservation another (INSERT + COMMIT)."""

    def __init__(self, conn: psycopg.Connection[Any], host: str, keys: Sequence[int]) -> None:
        from psycopg import pq

        self.conn = conn
        self._escaping = pq.Escaping(conn.pgconn)
        self.host = host
        self._cur = conn.cursor()
        # the locks in one global order: two checks never wait on each other in a cycle
        self._queue: list[tuple[str, Sequence[Any]]] = [("begin", ())]
        self._queue += [(LOCK_SQL, [k]) for k in sorted(set(keys))]
        self._prelude = len(self._queue)
        self._sent = False
        self._expire = False
        self._now = datetime.now(UTC)  # expire_reservations' (the database's clock)

    def _literal(self, value: Any) -> str:
        """A parameter as an SQL literal (only the simple protocol carries several
        statements, so there is no binding): text escaped by libpq, the rest by type.
        Rendered here rather than by psycopg's ClientCursor, whose per-query parsing cost
        more CPU than the check itself."""
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, datetime):
            return f"'{value.isoformat()}'::timestamptz"
        if isinstance(value, str):
            return bytes(self._escaping.escape_literal(value.encode())).decode()
        if isinstance(value, list | tuple):
            return f"ARRAY[{', '.join(self._literal(v) for v in value)}]::text[]" if value else "'{}'::text[]"
        raise TypeError(f"no literal for {type(value).__name__}")

    def _send(self, sql: str, params: Sequence[Any]) -> psycopg.Cursor[Any]:
        """The queue, then ``sql``, in one round trip; the cursor on ``sql``'s result.
        Statements with parameters run as server-side prepared statements (PREPARE once
        per connection, then EXECUTE): no parse or plan on the server each time, which
        under load cost more than the reads themselves."""
        self._queue.append((sql, params))
        known = _PREPARED.setdefault(self.conn, set())
        texts, fresh = [], []
        for text, ps in self._queue:
            if not ps:
                texts.append(text)
                continue
            name = _statement_name(text, _GENERATION.get(self.conn, 0))
            if name not in known and name not in fresh:
                texts.insert(0, f"prepare {name} as {_numbered(text)}")  # before BEGIN: not rolled back
                fresh.append(name)
            texts.append(f"execute {name}({', '.join(self._literal(p) for p in ps)})")
        self._queue.clear()
        self._sent = True
        try:
            self._cur.execute("; ".join(texts).encode())  # our own statements, our own literals
        except BaseException:
            _PREPARED.pop(self.conn, None)  # which ones ran is unknown: name them anew
            _GENERATION[self.conn] = _GENERATION.get(self.conn, 0) + 1
            raise
        known.update(fresh)
        while self._cur.nextset():
            pass
        return self._cur

    def spend_state(self, asks: Sequence[SpendAsk]) -> list[SpendState]:
        host = self.host if self._expire else None
        sql, params = state_sql(asks, host)
        row = self._send(sql, params).fetchone()
        assert row is not None
        if host is not None:
            # pid liveness is judged here, on this host, for this host's reservations only
            from cascadeflow_cli.ledger.liveness import stale_here

            self._expire = False
            ids, pids, expiries = row[-3] or [], row[-2] or [], row[-1] or []
            dead = [rid for rid, pid, expires in zip(ids, pids, expiries, strict=True)
                    if stale_here(rid, pid, expires <= self._now.timestamp())]
            if dead:  # rare: a process killed mid-request; read again without them
                self._send("delete from reservations where id = any(%s)", [dead])
                return self.spend_state(asks)
        return unpack_state(row, asks)

    def window_spend(self, user: str, win: Window) -> int:
        return self.spend_state([SpendAsk((user,), (win,))])[0].spent[0]

    def reserved_spend(self, user: str) -> int:
        return self.spend_state([SpendAsk((user,), ())])[0].reserved_nusd

    def request_count(self, user: str) -> int:
        row = self._send(REQUESTS_SQL, [user]).fetchone()
        return int(row[0]) if row else 0

    def expire_reservations(self, now: datetime) -> None:
        """Another host's past their deadline (the database's clock); this host's when
        ``stale_here`` says so (found with the next read): a wall clock moved forward
        expired live ones. Another host's pids are not ours to judge."""
        self._queue.append((EXPIRE_SQL, [now, self.host]))
        self._expire, self._now = True, now

    def reserve(self, hold: Any) -> None:
        self._queue.append((RESERVE_SQL, [hold.id, hold.user, hold.request_id, hold.amount_nusd,
                                          hold.created_at, hold.expires_at, hold.pid, hold.host]))

    def first_warning(self, user: str, window: str, window_start: str, threshold: str, now: datetime) -> bool:
        return self._send(WARNING_SQL, [user, window, window_start, threshold, now]).rowcount == 1

    def commit(self) -> None:
        """COMMIT with whatever is still queued; nothing at all if nothing was done."""
        if not self._sent and len(self._queue) == self._prelude:
            self._queue.clear()
            return
        self._send("commit", ())

    def rollback(self) -> None:
        import psycopg

        self._queue.clear()
        if self.conn.closed or self.conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            return
        with contextlib.suppress(psycopg.Error):
            self.conn.execute("rollback")


LIMIT_COLUMNS = tuple(f"{w}_nusd" for w in WINDOWS)
