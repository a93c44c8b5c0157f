"""The PostgreSQL ledger: the storage interface (ledger/storage.py) on a server that many
hosts share. Same schema and migrations as SQLite (ledger/postgres/ddl.py renders them),
the same records, the same policy modules above it.

What differs, and why:
- A budget check holds a transaction-scoped advisory lock per user and per team (see
  budget_sql.py for why not a row lock) instead of SQLite's whole-file write lock, so
  checks of different users never wait on each other.
- Time is the database's (``DatabaseClock``): two hosts whose clocks disagree still count
  the same day, and their rows carry timestamps of one clock.
- Orphaned reservations are expired by their deadline on the database's clock; the pid
  check only applies to reservations made on this host (a pid means nothing elsewhere).
- A transaction that loses a race (serialization failure, deadlock) or its connection is
  run again whole; writes are keyed by ids chosen before the first attempt, so a retry
  never counts anything twice.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.clock import Clock, format_ts
from cascadeflow_cli.dburl import LedgerLocation
from cascadeflow_cli.errors import LedgerError
from cascadeflow_cli.faults import checkpoint
from cascadeflow_cli.ledger import journal, schema
from cascadeflow_cli.ledger.postgres import budget_sql, connection, ddl, migrate, reports
from cascadeflow_cli.ledger.postgres.connection import DatabaseClock, connect, in_transaction
from cascadeflow_cli.ledger.postgres.ddl import q
from cascadeflow_cli.ledger.postgres.keys import PgKeyQueries
from cascadeflow_cli.ledger.postgres.tables import PgBatchQueries, PgBudgetQueries
from cascadeflow_cli.ledger.sqlite_store import _LABELLED_DRAFTS as _SQLITE_LABELLED_DRAFTS
from cascadeflow_cli.ledger.storage import SpendAsk, SpendState

if TYPE_CHECKING:
    import psycopg

    from cascadeflow_cli.windows import Window

REQUEST_INSERT = (f"insert into requests ({', '.join(q(c) for c in schema.REQUEST_COLUMNS)}) "
                  f"values ({', '.join(['%s'] * len(schema.REQUEST_COLUMNS))}) on conflict (id) do nothing")
CALL_INSERT = (f"insert into calls ({', '.join(q(c) for c in schema.CALL_COLUMNS)}) "
               f"values ({', '.join(['%s'] * len(schema.CALL_COLUMNS))}) on conflict (id) do nothing")
SIGNAL_COLUMNS = ("call_id", "request_id", "logprobs", "samples", "agreement", "features")
BULK_CHUNK = 5000
# the new requests of a chunk, then the calls and signals of those only; FK checks run at
# the end of the statement, when the requests are in
BULK_MOVE = """
    with new as (insert into requests select * from _in_requests on conflict do nothing returning id),
    c as (insert into calls select k.* from _in_calls k join new on new.id = k.request_id
          on conflict (id) do nothing returning 1),
    g as (insert into call_signals select k.* from _in_call_signals k join new on new.id = k.request_id
          on conflict (call_id) do nothing returning 1)
    select (select count(*) from new), (select count(*) from c), (select count(*) from g)
"""


def _journal_anchor(location: LedgerLocation) -> Path:
    """Where this host keeps the side journal of a database ledger (the journal is a
    file next to this path): the user data dir, one per database, named without secrets."""
    from cascadeflow_cli.config import user_data_dir

    digest = hashlib.sha256(location.display().encode()).hexdigest()[:16]
    try:  # made now: on a host where cascade never ran, a refused record was "recorded nowhere"
        (home := user_data_dir()).mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise LedgerError(f"{location.display()}: cannot make the side journal's directory: {exc}") from None
    return home / f"postgres-{digest}"


class _Timestamps:
    """psycopg loader: timestamptz read back as ledger text (format_ts), like SQLite's."""

    @staticmethod
    def register(conn: psycopg.Connection[Any]) -> None:
        from psycopg.types.datetime import TimestamptzLoader

        class Loader(TimestamptzLoader):
            def load(self, data: Any) -> str:  # type: ignore[override]
                return format_ts(super().load(data))

        conn.adapters.register_loader("timestamptz", Loader)


class PostgresLedger(PgKeyQueries, PgBudgetQueries, PgBatchQueries):
    """A ledger in a PostgreSQL database. Each thread gets its own connection."""

    def __init__(self, location: LedgerLocation, clock: Clock | None = None) -> None:
        self.location = location
        self.path = _journal_anchor(location)
        self.host = socket.gethostname()
        self._local = threading.local()
        self._connections: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        conn = self._conn()  # the server down or a wrong password: one line, before anything else
        self.clock: Clock = clock or DatabaseClock(self._conn)
        try:
            migrate.migrate(conn, self.clock.now(), location.display())
        except LedgerError:
            self.close()
            raise
        self.journal_error: str | None = None  # why the ledger refused a journal entry
        self.journal_refused: list[tuple[Path, str]] = []  # entries quarantined at open, and why
        self.journal_waiting = self.replay_journal()

    def __str__(self) -> str:
        return self.location.display()

    # --- connections ----------------------------------------------------------------

    def _conn(self) -> psycopg.Connection[Any]:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = connect(self.location)
            connection.session_settings(conn, writer=True)
            _Timestamps.register(conn)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _reconnect(self) -> psycopg.Connection[Any]:
        self._local.conn = None
        return self._conn()

    def _tx(self, work: Callable[[psycopg.Connection[Any]], Any], what: str = "cannot write ledger",
            *, single: bool = False) -> Any:
        """``work`` in one transaction; ``single``: it is one statement (its own transaction
        in autocommit, no BEGIN/COMMIT round trips)."""
        return in_transaction(self._conn, self._reconnect, work, f"{self}: {what}", single=single)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        def read(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
            with conn.cursor(row_factory=dict_row) as cur:
                return cur.execute(sql, params).fetchall()  # type: ignore[arg-type]

        return in_transaction(self._conn, self._reconnect, read, f"{self}: cannot read ledger",
                              single=True)

    def _value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        def read(conn: psycopg.Connection[Any]) -> Any:
            row = conn.execute(sql, params).fetchone()  # type: ignore[arg-type]
            return None if row is None else row[0]

        return in_transaction(self._conn, self._reconnect, read, f"{self}: cannot read ledger", single=True)

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> PostgresLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the side journal -------------------------------------------------------------

    def writable(self) -> bool:
        try:
            return self._value("select not pg_is_in_recovery()") is True
        except LedgerError:
            return False

    def check_writable(self) -> None:
        """Before anything is paid for: the server answers and takes writes, and nothing
        waits in this host's journal."""
        journal.retry_refused(self)
        if not self.writable():
            raise LedgerError(f"{self}: cannot write ledger: the server is read-only or gone "
                              "(nothing was sent to a provider)")
        if self.journal_waiting:
            raise LedgerError(f"{self}: {self.journal_waiting} answered request(s) in "
                              f"{journal.journal_dir(self.path)} cannot be recorded"
                              f"{journal.why(self.journal_error)}; nothing was sent")

    def replay_journal(self) -> int:
        return journal.replay_all(self)

    # --- requests: write --------------------------------------------------------------

    def record(self, request: schema.RequestRecord, reservation_id: str | None = None) -> None:
        """One statement (so one round trip, its own transaction): the settlement, the
        request, and its calls and signals only if the request is new."""
        sql = _record_sql(reservation_id is not None, len(request.calls), len(request.signals))
        params: list[Any] = [] if reservation_id is None else [reservation_id]
        params += schema.request_row(request).values()
        for call in request.calls:
            params += schema.call_row(call).values()
        for sig in request.signals:
            params += _signal_row(request.id, sig)

        def work(conn: psycopg.Connection[Any]) -> None:
            checkpoint("in-commit")  # (one statement: nothing is written before it runs)
            conn.execute(sql, params)  # type: ignore[arg-type]  # built from the schema

        self._tx(work, single=True)

    def record_many(self, requests: Iterable[schema.RequestRecord],
                    on_progress: Callable[[int], None] | None = None) -> Any:
        """All in one transaction, in chunks: each chunk is COPYed into temporary tables
        and moved over by one statement per table (``on conflict do nothing``: a request
        whose id or batch row is there already is skipped, with its calls), so the spend
        triggers run once per chunk, not once per row."""
        from cascadeflow_cli.ledger.storage import RecordCounts

        batch = requests if isinstance(requests, list) else list(requests)  # a retry replays it

        def work(conn: psycopg.Connection[Any]) -> RecordCounts:
            for table in ("requests", "calls", "call_signals"):
                conn.execute(f"create temp table if not exists _in_{table} "
                             f"(like {table} including defaults) on commit delete rows")
            added = calls = 0
            for at in range(0, len(batch), BULK_CHUNK):
                chunk = batch[at:at + BULK_CHUNK]
                with conn.cursor() as cur:
                    _copy(cur, "requests", schema.REQUEST_COLUMNS,
                          (schema.request_row(r).values() for r in chunk))
                    _copy(cur, "calls", schema.CALL_COLUMNS,
                          (schema.call_row(c).values() for r in chunk for c in r.calls))
                    _copy(cur, "call_signals", SIGNAL_COLUMNS,
                          (_signal_row(r.id, sig) for r in chunk for sig in r.signals))
                    row = cur.execute(BULK_MOVE).fetchone()
                    cur.execute("truncate _in_requests, _in_calls, _in_call_signals")
                added += row[0] if row else 0
                calls += row[1] if row else 0
                if on_progress is not None:
                    on_progress(min(at + BULK_CHUNK, len(batch)))
            return RecordCounts(added, calls)

        return self._tx(work)

    # --- requests: read ---------------------------------------------------------------

    def _with_calls(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not requests:
            return []
        calls: dict[str, list[dict[str, Any]]] = {}
        for call in self._rows("select * from calls where request_id = any(%s) order by request_id, seq",
                               [[r["id"] for r in requests]]):
            calls.setdefault(call["request_id"], []).append(call)
        for r in requests:
            r["calls"] = calls.get(r["id"], [])
        return requests

    def recent_requests(self, limit: int | None = 10, user: str | None = None,
                        since: str | None = None) -> list[dict[str, Any]]:
        from cascadeflow_cli.ledger.export import LedgerFilter

        cond, params = reports.where(LedgerFilter(user=user, since=since))
        sql = f"select r.* from requests r where {cond} order by r.ts desc, r.id desc"
        return self._with_calls(self._rows(sql + (f" limit {int(limit)}" if limit else ""), params))

    def load_request(self, request_id: str) -> dict[str, Any]:
        rows = self._with_calls(self._rows("select * from requests where id = %s", [request_id]))
        if not rows:
            raise LedgerError(f"{self}: no request {request_id!r}")
        return rows[0]

    def iter_records(self, flt: Any = None, page: int = 500) -> Iterator[schema.RequestRecord]:
        conn = self._reader()  # a caller may write (ledger copy) while this one reads
        try:
            yield from connection.streamed(reports.iter_records(conn, flt, page), f"{self}: cannot read")
        finally:
            conn.close()

    def _reader(self) -> psycopg.Connection[Any]:
        """A connection of its own, for a long read while the caller writes elsewhere."""
        conn = connect(self.location)
        connection.session_settings(conn, writer=False)
        _Timestamps.register(conn)
        return conn

    def table_rows(self, table: schema.Table) -> Iterator[dict[str, Any]]:
        conn = self._reader()
        try:
            with conn.transaction(), conn.cursor(name="cascade_table_rows") as cur:  # server-side: streamed
                cur.itersize = 2000
                cur.execute(f"select {reports.columns_sql(table, 't')} from {q(table.name)} t "  # type: ignore[arg-type]
                            f"order by {', '.join(q(c) for c in table.primary_key)}")
                for values in cur:
                    yield dict(zip(table.names, values, strict=True))
        except _psycopg_error() as exc:
            raise LedgerError(f"{self}: cannot read ledger: {connection.one_line(exc)}") from None
        finally:
            conn.close()

    def add_rows(self, table: schema.Table, rows: Sequence[dict[str, Any]]) -> int:
        """COPY into a temporary twin of the table, then one INSERT ... ON CONFLICT DO NOTHING."""
        guard = " where exists (select 1 from requests r where r.id = k.request_id)" * table.of_request

        def work(conn: psycopg.Connection[Any]) -> int:
            conn.execute(f"create temp table if not exists _in_{table.name} "  # type: ignore[arg-type]
                         f"(like {q(table.name)} including defaults) on commit delete rows")
            with conn.cursor() as cur:
                _copy(cur, table.name, table.names, ([r[c] for c in table.names] for r in rows))
                names = ", ".join(q(c) for c in table.names)
                cur.execute(f"insert into {q(table.name)} ({names}) select {names} from _in_{table.name} k"  # type: ignore[arg-type]
                            f"{guard} on conflict do nothing")
                return cur.rowcount

        return int(self._tx(work))

    def export_rows(self, fmt: str, flt: Any, size: int = 2000) -> Iterator[list[str]]:
        return connection.streamed(reports.export_rows(self._conn(), fmt, flt, size), f"{self}: cannot read")

    def usage(self, flt: Any = None, by: str | None = None, timezone: str = "UTC") -> Any:
        return self._tx(lambda conn: reports.usage(conn, flt, by, timezone), "cannot read ledger")

    def daily_totals(self, *, by: str | None, user: str | None, model: str | None, timezone: str,
                     start: Any, end: Any) -> Any:
        return self._tx(lambda conn: reports.daily_totals(conn, by=by, user=user, model=model,
                                                          timezone=timezone, start=start, end=end),
                        "cannot read ledger")

    # --- quality labels ---------------------------------------------------------------

    def _upsert_label(self, conn: psycopg.Connection[Any], row: dict[str, Any]) -> bool:
        """Insert or replace the (request, source) label, keeping when it was first given;
        True when one was replaced."""
        names = list(row)
        updates = ", ".join(f"{q(n)} = excluded.{q(n)}" for n in names if n not in ("request_id", "source",
                                                                                     "created_at"))
        found = conn.execute(
            f"insert into quality_labels ({', '.join(q(n) for n in names)}) "
            f"values ({', '.join(['%s'] * len(names))}) "
            f"on conflict (request_id, source) do update set {updates} returning (xmax <> 0)",
            list(row.values())).fetchone()
        return bool(found and found[0])

    def record_feedback(self, request_id: str, good: bool, note: str | None = None) -> bool:
        from cascadeflow_cli.errors import InputError

        now = self.clock.now()

        def work(conn: psycopg.Connection[Any]) -> bool:
            found = conn.execute("select status from requests where id = %s", [request_id]).fetchone()
            if found is None:
                raise InputError(f"no request {request_id!r} in the ledger {self}")
            if found[0] != "ok":
                raise InputError(f"request {request_id!r} has no answer to label (status {found[0]})")
            return self._upsert_label(conn, {"request_id": request_id, "source": "feedback",
                                             "correct": int(good), "note": note,
                                             "created_at": now, "updated_at": now})

        return self._tx(work)  # type: ignore[no-any-return]

    def record_shadow(self, outcome: Any, reservation_id: str | None) -> None:
        now = self.clock.now()

        def work(conn: psycopg.Connection[Any]) -> None:
            if reservation_id is not None:
                conn.execute("delete from reservations where id = %s", [reservation_id])
            call_id = None
            if outcome.call is not None:
                inserted = conn.execute(CALL_INSERT, list(schema.call_row(outcome.call).values())).rowcount
                call_id = outcome.call.id
                cost = outcome.call.cost_nusd
                if cost and inserted:  # the spend trigger counts it against the user's budgets
                    conn.execute("update requests set cost_nusd = cost_nusd + %s, "
                                 "savings_nusd = savings_nusd - %s where id = %s",
                                 [cost, cost, outcome.request_id])
            self._upsert_label(conn, {
                "request_id": outcome.request_id, "source": "shadow",
                "correct": None if outcome.correct is None else int(outcome.correct),
                "agreement": outcome.agreement, "method": outcome.method, "note": outcome.error,
                "status": outcome.status, "call_id": call_id, "created_at": now, "updated_at": now,
            })

        self._tx(work)

    def next_seq(self, request_id: str) -> int:
        return int(self._value("select coalesce(max(seq), -1) + 1 from calls where request_id = %s",
                               [request_id]))

    def labels_for(self, request_id: str) -> list[dict[str, Any]]:
        return self._rows("select * from quality_labels where request_id = %s order by source", [request_id])

    def labelled_drafts(self) -> list[dict[str, Any]]:
        return self._rows(LABELLED_DRAFTS)

    # --- spend ------------------------------------------------------------------------

    def spend_state(self, asks: Sequence[SpendAsk]) -> list[SpendState]:
        return self._tx(lambda conn: budget_sql.read_state(conn, asks),  # type: ignore[no-any-return]
                        "cannot read ledger", single=True)

    def window_spend(self, user: str, win: Window) -> int:
        return self.spend_state([SpendAsk((user,), (win,))])[0].spent[0]

    def reserved_spend(self, user: str) -> int:
        return self.spend_state([SpendAsk((user,), ())])[0].reserved_nusd

    def request_count(self, user: str) -> int:
        return int(self._value('select coalesce(max(requests), 0) from spend_totals where "user" = %s',
                               [user]))

    def total_spend(self, user: str) -> int:
        return int(self._value('select coalesce(max(cost_nusd), 0) from spend_totals where "user" = %s',
                               [user]))

    # --- enforcement ------------------------------------------------------------------

    @contextmanager
    def budget_lock(self, user: str, teams: Sequence[str] = ()
                    ) -> Iterator[budget_sql.PgBudgetTransaction]:
        """One READ COMMITTED transaction holding the advisory locks of ``user`` and of
        each team in ``teams`` (the gate checks a member's teams in the same transaction),
        sent lazily (budget_sql.PgBudgetTransaction: two round trips for a check).
        Not retried here: the caller's decision runs inside; a lost race surfaces as a
        LedgerError (it cannot happen to a transaction that only inserts and deletes its
        own rows under these locks, except by deadlock, which the lock order prevents)."""
        txn = budget_sql.PgBudgetTransaction(self._conn(), self.host, [
            budget_sql.lock_key("user", user), *(budget_sql.lock_key("team", t) for t in teams)])
        try:
            yield txn
            txn.commit()
        except _psycopg_error() as exc:
            from cascadeflow_cli.ledger.postgres.connection import one_line

            txn.rollback()
            raise LedgerError(f"{self}: cannot write ledger: {one_line(exc)}") from None
        except BaseException:
            txn.rollback()
            raise

    def release(self, reservation_id: str | None) -> None:
        if reservation_id is None:
            return
        self._tx(lambda conn: conn.execute("delete from reservations where id = %s", [reservation_id]),
                 single=True)


# calibration's rows, as SQLite selects them; ties in time by id here (no rowid)
LABELLED_DRAFTS = _SQLITE_LABELLED_DRAFTS.replace("r.rowid", "r.id")


def _typed_values(table: schema.Table, names: Sequence[str]) -> str:
    """One VALUES row of ``names`` with each parameter cast to its column's type (the rows
    of a CTE insert are typed by their expressions, not by the target columns)."""
    return "(" + ", ".join(f"%s::{ddl.pg_type(table, table.column(n))}" for n in names) + ")"


@lru_cache(maxsize=64)
def _record_sql(settle: bool, calls: int, signals: int) -> str:
    """``record``'s statement for a request with that many calls and signals. The calls
    and signals go in only if the request did (a request already there keeps its own)."""
    ctes = ["settled as (delete from reservations where id = %s)"] if settle else []
    ctes.append(f"new as ({REQUEST_INSERT} returning id)")
    for name, table, columns, count in (("c", schema.CALLS, schema.CALL_COLUMNS, calls),
                                        ("g", schema.CALL_SIGNALS, SIGNAL_COLUMNS, signals)):
        if count:
            rows = ", ".join([_typed_values(table, columns)] * count)
            conflict = table.primary_key[0]
            ctes.append(f"{name} as (insert into {table.name} ({', '.join(q(c) for c in columns)}) "
                        f"select * from (values {rows}) v where exists (select 1 from new) "
                        f"on conflict ({q(conflict)}) do nothing)")
    return "with " + ", ".join(ctes) + " select count(*) from new"


def _psycopg_error() -> type[Exception]:
    import psycopg

    return psycopg.Error  # type: ignore[no-any-return]


def _copy(cur: psycopg.Cursor[Any], table: str, columns: Sequence[str],
          rows: Iterable[Iterable[Any]]) -> None:
    with cur.copy(f"copy _in_{table} ({', '.join(q(c) for c in columns)}) from stdin") as copy:
        for row in rows:
            copy.write_row(tuple(row))


def _signal_row(request_id: str, s: Any) -> list[Any]:
    logprobs = None if s.logprobs is None else json.dumps([round(x, 4) for x in s.logprobs])
    features = json.dumps(dict(s.features)) if s.features else None
    return [s.call_id, request_id, logprobs, s.samples, s.agreement, features]


def open_postgres(location: LedgerLocation, clock: Clock | None = None) -> PostgresLedger:
    return PostgresLedger(location, clock)


__all__ = ["PostgresLedger", "open_postgres"]
