"""The PostgreSQL backend's API-key queries (`cascade key`, `cascade serve`), mixed into
``PostgresLedger`` and its budget transaction; the policy is in ledger/keys.py. The
same queries as ledger/sqlite_keys.py, in this dialect."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.ledger.postgres.ddl import q

if TYPE_CHECKING:
    import psycopg

    from cascadeflow_cli.windows import Window


class PgKeyQueries:
    """``api_keys`` reads and writes through ``PostgresLedger``'s ``_tx`` and ``_rows``."""

    _tx: Callable[..., Any]
    _rows: Callable[..., list[dict[str, Any]]]

    def insert_api_key(self, row: dict[str, Any]) -> bool:
        """False when the prefix is taken (the caller draws another)."""
        names = ", ".join(q(n) for n in row)
        sql = (f"insert into api_keys ({names}) values ({', '.join(['%s'] * len(row))}) "
               "on conflict (prefix) do nothing")
        return bool(self._tx(lambda conn: conn.execute(sql, list(row.values())).rowcount))

    def api_keys(self, user: str | None = None) -> list[dict[str, Any]]:
        where = ' where "user" = %s' if user else ""
        sql = f"select * from api_keys{where} order by created_at, prefix"
        return self._rows(sql, [user] if user else [])

    def revoke_api_key(self, prefix: str, now: str) -> dict[str, Any] | None:
        def work(conn: psycopg.Connection[Any]) -> None:
            conn.execute("update api_keys set revoked_at = coalesce(revoked_at, %s) where prefix = %s",
                         [now, prefix])

        self._tx(work)
        rows = self._rows("select * from api_keys where prefix = %s", [prefix])
        return rows[0] if rows else None

    def api_key_by_hash(self, key_hash: str) -> dict[str, Any] | None:
        rows = self._rows("select * from api_keys where key_hash = %s and revoked_at is null", [key_hash])
        return rows[0] if rows else None

    def admit_request(self, prefix: str, limit: int, window_s: float) -> float | None:
        """ledger/storage.py's RateWindows: the window in ``api_key_windows``, shared by
        every host on this database."""
        params = {"p": prefix, "n": limit, "w": window_s}

        def work(conn: psycopg.Connection[Any]) -> float | None:
            if conn.execute(ADMIT_SQL, params).fetchone() is not None:
                return None
            row = conn.execute(WAIT_SQL, params).fetchone()
            return max(0.0, row[0]) if row and row[0] is not None else 0.0

        # autocommit, each statement its own transaction; one retried after a lost connection
        # may count a request twice: the limit errs towards refusing, never past it
        return self._tx(work, "cannot count the key's requests", single=True)  # type: ignore[no-any-return]


# The window as counts of requests per bucket of 1/60th of it (a second of a minute): at
# most 61 buckets a key whatever its limit (a list of every start cost 1.1 ms a request at
# 1,000 in the window and 14 ms at 5,000, load 14). The buckets overlapping the window are
# all counted, the oldest whole, so no 60 s ever hold more than the limit; a request may
# wait up to a bucket (1 s) longer than an exact window would make it.
#
# One statement, so one round trip in autocommit: ON CONFLICT DO UPDATE works on the key's
# row as last committed, holding its lock, so two hosts' requests are counted one after the
# other (a SELECT before an UPDATE would read a snapshot taken before the other's commit).
# The time is the database's (clock_timestamp(): the bucket the insert proposes), never a
# host's. A request the window has no room for updates nothing and returns no row.
_NOW = "floor(extract(epoch from clock_timestamp()) * 60 / %(w)s)::bigint"
_LIVE = "from unnest(w.buckets, w.counts) u(b, n) where b >= excluded.buckets[1] - 60"
ADMIT_SQL = f"""
insert into api_key_windows as w (prefix, buckets, counts) values (%(p)s, array[{_NOW}], array[1::bigint])
on conflict (prefix) do update set (buckets, counts) = (
    select array_agg(b order by b), array_agg(n order by b) from (
        select b, sum(n)::bigint n from (select b, n {_LIVE} union all select excluded.buckets[1], 1) x
        group by b) y)
where (select coalesce(sum(n), 0) {_LIVE}) < %(n)s
returning 1
"""
# after a refusal: until the oldest bucket counted leaves the window
WAIT_SQL = f"""
select (min(b) + 61) * %(w)s / 60 - extract(epoch from clock_timestamp())::float8
from api_key_windows, unnest(buckets, counts) u(b, n) where prefix = %(p)s and b >= {_NOW} - 60
"""


class PgKeyTxn:
    """A key's spend inside ``budget_lock`` (which holds the key's user's advisory lock:
    every request of a key is its user's, so the key's checks are serialised too).

    A transaction that queues its statements and sends them together (``_send`` with the
    queue before it, ``_queue`` for those nobody waits on) gets these the same way, so they
    run after its BEGIN and locks; otherwise they run on ``conn`` directly."""

    conn: psycopg.Connection[Any]

    def _one(self, sql: str, params: Sequence[Any]) -> int:
        send = getattr(self, "_send", None)
        cursor = send(sql, params) if send is not None else self.conn.execute(sql, params)  # type: ignore[arg-type]
        row = cursor.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _later(self, sql: str, params: Sequence[Any]) -> None:
        queue = getattr(self, "_queue", None)
        if queue is not None:
            queue.append((sql, params))
        else:
            self.conn.execute(sql, params)  # type: ignore[arg-type]

    def key_window_spend(self, prefix: str, win: Window) -> int:
        sql = ("select coalesce(sum(r.cost_nusd), 0) from api_key_requests k "
               "join requests r on r.id = k.request_id where k.prefix = %s")
        params: list[Any] = [prefix]
        if win.end is not None:
            sql += " and r.ts >= %s and r.ts < %s"
            params += [win.start, win.end]
        return self._one(sql, params)

    def key_reserved_spend(self, prefix: str) -> int:
        sql = ("select coalesce(sum(v.amount_nusd), 0) from reservations v "
               "join api_key_requests k on k.request_id = v.request_id where k.prefix = %s")
        return self._one(sql, [prefix])

    def link_key(self, prefix: str, request_id: str) -> None:
        self._later("insert into api_key_requests (request_id, prefix) values (%s, %s) "
                    "on conflict (request_id) do nothing", [request_id, prefix])
