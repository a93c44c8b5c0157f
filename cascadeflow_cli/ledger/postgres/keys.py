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
        def work(conn: psycopg.Connection[Any]) -> tuple[int, float]:
            row = conn.execute(ADMIT_SQL, {"p": prefix, "n": limit, "w": window_s}).fetchone()
            assert row is not None  # an upsert with RETURNING always returns its row
            return row[0], row[1]

        admitted, wait = self._tx(work, "cannot count the key's requests", single=True)
        return None if admitted else max(0.0, wait)


# One statement, so one round trip in autocommit: ON CONFLICT DO UPDATE works on the key's
# row as last committed, holding its lock, so two hosts' requests are counted one after the
# other (a SELECT before an UPDATE would read a snapshot taken before the other's commit).
# ``now`` is the stamp the insert proposes (the database's clock_timestamp(), never a
# host's); the SET clauses all read the row as it was.
_LIVE = ("array(select s from unnest(w.stamps) s "
         "where s > excluded.stamps[1] - make_interval(secs => %(w)s) order by s)")
ADMIT_SQL = f"""
insert into api_key_windows as w (prefix, stamps, admitted) values (%(p)s, array[clock_timestamp()], 1)
on conflict (prefix) do update set
    stamps = case when cardinality({_LIVE}) < %(n)s then {_LIVE} || excluded.stamps else {_LIVE} end,
    admitted = (cardinality({_LIVE}) < %(n)s)::int
returning admitted, extract(epoch from w.stamps[1] + make_interval(secs => %(w)s) - clock_timestamp())::float8
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
