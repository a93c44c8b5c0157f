"""The SQLite backend's side of the storage interface (ledger/storage.py): the queries
behind each ``LedgerStore`` operation. ``ledger.db.Ledger`` mixes these in and owns the
connections and transactions; the bigger queries live with their subject (export.py,
usage.py, spend.py, history.py, budgets.py's spend aggregates), written for SQLite.

Dialect notes, for the PostgreSQL backend: ``?`` parameters; ``INSERT OR IGNORE`` (ON
CONFLICT DO NOTHING there); ``Table.upsert`` (ledger/sqlite_conn.py) for budgets (ON CONFLICT ... DO
UPDATE); the check-and-reserve lock is the whole file (``BEGIN IMMEDIATE``), where a
server takes a per-user lock; ``rowid`` gives insertion order (a serial column there).
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from cascadeflow_cli.clock import format_ts
from cascadeflow_cli.errors import InputError
from cascadeflow_cli.faults import checkpoint
from cascadeflow_cli.ledger import budgets
from cascadeflow_cli.ledger.budgets import BudgetConfig, budget_from_row, budget_row
from cascadeflow_cli.ledger.schema import CALL_COLUMNS, REQUEST_COLUMNS, CallSignals, call_row, request_row
from cascadeflow_cli.ledger.sql import money_sum_sql
from cascadeflow_cli.ledger.sqlite_conn import insert_sql
from cascadeflow_cli.ledger.sqlite_keys import SqliteKeyTxn
from cascadeflow_cli.ledger.storage import Hold, RecordCounts, spend_state_by_parts
from cascadeflow_cli.money import nanos

if TYPE_CHECKING:
    from cascadeflow_cli.clock import Clock
    from cascadeflow_cli.ledger.export import LedgerFilter
    from cascadeflow_cli.ledger.labels import ShadowOutcome
    from cascadeflow_cli.ledger.schema import RequestRecord, Table
    from cascadeflow_cli.ledger.sqlite_conn import Database
    from cascadeflow_cli.ledger.storage import DailyTotals, SpendAsk, SpendState
    from cascadeflow_cli.ledger.usage import UsageReport
    from cascadeflow_cli.windows import Window

_CHUNK = 1000  # requests per executemany of record_many


_MANY_REQUESTS = insert_sql("requests", REQUEST_COLUMNS, "insert or ignore")
# Guarded by EXISTS: a request skipped as a duplicate of another id's external_id must not
# leave calls pointing at nothing.
_MANY_CALLS = (f"insert or ignore into calls ({', '.join(CALL_COLUMNS)}) "
               f"select {', '.join('?' * len(CALL_COLUMNS))} "
               "where exists (select 1 from requests where id = ?)")


def insert_signals(db: Database, request_id: str, signals: Sequence[CallSignals],
                   verb: str = "insert") -> None:
    """Inside the caller's request transaction."""
    rows = [
        (
            s.call_id,
            request_id,
            None if s.logprobs is None else json.dumps([round(x, 4) for x in s.logprobs]),
            s.samples,
            s.agreement,
            json.dumps(dict(s.features)) if s.features else None,
        )
        for s in signals
    ]
    db.conn.executemany(
        f"{verb} into call_signals (call_id, request_id, logprobs, samples, agreement, features) "
        "values (?, ?, ?, ?, ?, ?)",
        rows,
    )


class SpendReads:
    """SQLite's ``SpendReader`` over ``self.db`` (the spend aggregates of budgets.py)."""

    db: Database

    def window_spend(self, user: str, win: Window) -> int:
        return budgets.window_spend(self.db, user, win)

    def reserved_spend(self, user: str) -> int:
        return budgets.reserved_spend(self.db, user)

    def request_count(self, user: str) -> int:
        return budgets.request_count(self.db, user)

    def spend_state(self, asks: Sequence[SpendAsk]) -> list[SpendState]:
        return spend_state_by_parts(self, asks)


class BudgetTxn(SpendReads, SqliteKeyTxn):
    """SQLite's ``BudgetTransaction``: the queries over one ``BEGIN IMMEDIATE`` write."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def expire_reservations(self, now: datetime) -> None:
        from cascadeflow_cli.ledger.liveness import is_stale

        host = socket.gethostname()
        rows = self.db.conn.execute("select id, pid, host, expires_at from reservations")
        stale = [rid for rid, pid, rhost, expires in rows if is_stale(rid, expires, pid, rhost, now, host)]
        for rid in stale:
            self.db.execute("delete from reservations where id = ?", [rid])

    def get_budget(self, user: str) -> BudgetConfig | None:
        return _budget(self.db, user)

    def reserve(self, hold: Hold) -> None:
        self.db.execute(insert_sql("reservations", tuple(Hold.__dataclass_fields__)),
                        [getattr(hold, name) for name in Hold.__dataclass_fields__])

    def first_warning(self, user: str, window: str, window_start: str, threshold: str, now: datetime) -> bool:
        key = [user, window, window_start, threshold]
        seen = self.db.execute("select 1 from budget_warnings where user = ? and window = ? "
                               "and window_start = ? and threshold = ?", key).fetchone()
        if seen:
            return False
        self.db.execute("insert into budget_warnings (user, window, window_start, threshold, warned_at) "
                        "values (?, ?, ?, ?, ?)", [*key, format_ts(now)])
        return True


class SqliteQueries(SpendReads):
    """The ``LedgerStore`` operations over ``self.db`` (this thread's connection) and
    ``self.write()`` (one writer transaction), both provided by ``Ledger``."""

    path: Path
    clock: Clock
    write: Callable[[], AbstractContextManager[Database]]

    # --- spend ------------------------------------------------------------------------

    def total_spend(self, user: str) -> int:
        row = self.db.execute(f"select {money_sum_sql('cost_nusd')} from requests where user = ?",
                              [user]).fetchone()
        return nanos(row[0])

    def daily_totals(self, *, by: str | None, user: str | None, model: str | None, timezone: str,
                     start: date | None, end: date | None) -> DailyTotals:
        from cascadeflow_cli.ledger.spend import sqlite_daily_totals

        return sqlite_daily_totals(self.db, by=by, user=user, model=model, timezone=timezone,
                                   start=start, end=end)

    # --- enforcement ------------------------------------------------------------------

    @contextmanager
    def budget_lock(self, user: str, teams: Sequence[str] = ()) -> Iterator[BudgetTxn]:
        with self.write() as db:  # BEGIN IMMEDIATE: every writer waits, whoever its user (or team)
            yield BudgetTxn(db)

    def release(self, reservation_id: str | None) -> None:
        if reservation_id is None:
            return
        with self.write() as db:
            db.execute("delete from reservations where id = ?", [reservation_id])

    # --- budgets ----------------------------------------------------------------------

    def get_budget(self, user: str) -> BudgetConfig | None:
        return _budget(self.db, user)

    def set_budget(self, user: str, budget: BudgetConfig) -> BudgetConfig:
        with self.write() as db:
            stored = (_budget(db, user) or BudgetConfig()).merged(budget)
            row = {"user": user, **budget_row(stored), "updated_at": format_ts(self.clock.now())}
            db["budgets"].upsert(row, pk="user")
        return stored

    def remove_budget(self, user: str) -> bool:
        with self.write() as db:
            return db.execute("delete from budgets where user = ?", [user]).rowcount > 0

    def list_budgets(self) -> list[tuple[str, BudgetConfig]]:
        rows = self.db.query("select * from budgets order by user")
        return [(row["user"], budget_from_row(row)) for row in rows]

    # --- requests ---------------------------------------------------------------------

    def record_many(self, requests: Iterable[RequestRecord],
                    on_progress: Callable[[int], None] | None = None) -> RecordCounts:
        new_requests = new_calls = done = 0
        with self.write() as db:
            conn = db.conn
            for chunk in _chunks(requests, _CHUNK):
                rows = [tuple(request_row(r).values()) for r in chunk]
                new_requests += conn.executemany(_MANY_REQUESTS, rows).rowcount
                calls = [(*call_row(c).values(), r.id) for r in chunk for c in r.calls]
                if calls:
                    new_calls += conn.executemany(_MANY_CALLS, calls).rowcount
                for r in chunk:
                    if r.signals:
                        insert_signals(db, r.id, r.signals, "insert or ignore")
                done += len(chunk)
                if on_progress is not None:
                    on_progress(done)
        return RecordCounts(new_requests, new_calls)

    def load_request(self, request_id: str) -> dict[str, Any]:
        # (a request and its calls commit together, so the second read sees them all)
        conn = self.db.conn
        cursor = conn.execute("select * from requests where id = ?", [request_id])
        names = [d[0] for d in cursor.description]
        row = dict(zip(names, cursor.fetchone(), strict=True))
        cursor = conn.execute("select * from calls where request_id = ? order by seq", [request_id])
        names = [d[0] for d in cursor.description]
        row["calls"] = [dict(zip(names, c, strict=True)) for c in cursor.fetchall()]
        return row

    def iter_records(self, flt: LedgerFilter | None = None, page: int = 500) -> Iterator[RequestRecord]:
        from cascadeflow_cli.ledger.history import iter_records

        return iter_records(self.db.conn, flt, page)

    def export_rows(self, fmt: str, flt: LedgerFilter, size: int = 2000) -> Iterator[list[str]]:
        from cascadeflow_cli.ledger.export import iter_batches

        for batch in iter_batches(self.db.conn, fmt, flt, size):
            yield [row[0] for row in batch]  # type: ignore[misc]

    def usage(self, flt: LedgerFilter | None = None, by: str | None = None,
              timezone: str = "UTC") -> UsageReport:
        from cascadeflow_cli.ledger.usage import usage

        return usage(self.db.conn, flt, by, timezone)

    # --- quality labels ---------------------------------------------------------------

    def record_feedback(self, request_id: str, good: bool, note: str | None = None) -> bool:
        now = format_ts(self.clock.now())
        with self.write() as db:
            found = list(db.query("select id, status from requests where id = ?", [request_id]))
            if not found:
                raise InputError(f"no request {request_id!r} in the ledger {self.path}")
            if found[0]["status"] != "ok":
                raise InputError(f"request {request_id!r} has no answer to label "
                                 f"(status {found[0]['status']})")
            return _upsert_label(db, {"request_id": request_id, "source": "feedback",
                                      "correct": int(good), "note": note,
                                      "created_at": now, "updated_at": now})

    def record_shadow(self, outcome: ShadowOutcome, reservation_id: str | None) -> None:
        now = format_ts(self.clock.now())
        with self.write() as db:
            conn = db.conn
            if reservation_id is not None:
                conn.execute("delete from reservations where id = ?", [reservation_id])
            call_id = None
            if outcome.call is not None:
                row = call_row(outcome.call)
                # a journal replay of a shadow already recorded adds nothing (as on PostgreSQL)
                inserted = conn.execute(insert_sql("calls", tuple(row), tail=" on conflict (id) do nothing"),
                                        list(row.values())).rowcount
                call_id = outcome.call.id
                cost = outcome.call.cost_nusd
                if cost and inserted:  # the spend triggers count it against the user's budgets
                    conn.execute("update requests set cost_nusd = cost_nusd + ?, "
                                 "savings_nusd = savings_nusd - ? where id = ?",
                                 [cost, cost, outcome.request_id])
            _upsert_label(db, {
                "request_id": outcome.request_id, "source": "shadow",
                "correct": None if outcome.correct is None else int(outcome.correct),
                "agreement": outcome.agreement, "method": outcome.method, "note": outcome.error,
                "status": outcome.status, "call_id": call_id, "created_at": now, "updated_at": now,
            })

    def next_seq(self, request_id: str) -> int:
        row = self.db.execute("select coalesce(max(seq), -1) + 1 from calls where request_id = ?",
                              [request_id]).fetchone()
        return int(row[0])

    def labels_for(self, request_id: str) -> list[dict[str, Any]]:
        return list(self.db.query("select * from quality_labels where request_id = ? order by source",
                                  [request_id]))

    def labelled_drafts(self) -> list[dict[str, Any]]:
        return list(self.db.query(_LABELLED_DRAFTS))

    # --- batch runs -------------------------------------------------------------------

    def start_batch(self, output: Path | None, input_path: Path) -> str:
        batch_id = uuid.uuid4().hex[:16]
        with self.write() as db:
            db.execute("insert into batches (id, output, input, started_at) values (?, ?, ?, ?)",
                       [batch_id, str(output) if output else None, str(input_path),
                        format_ts(self.clock.now())])
        return batch_id

    def latest_batch(self, output: Path) -> str | None:
        row = self.db.execute("select id from batches where output = ? "
                              "order by started_at desc, rowid desc limit 1", [str(output)]).fetchone()
        return row[0] if row else None

    def committed_rows(self, batch_id: str) -> dict[str, str]:
        return self._batch_column(batch_id, "id")

    def committed_queries(self, batch_id: str) -> dict[str, str | None]:
        return self._batch_column(batch_id, "query")

    def _batch_column(self, batch_id: str, column: str) -> dict[str, Any]:
        from cascadeflow_cli.ledger.batch_ids import SEPARATOR, external_id

        low = external_id(batch_id, "")
        high = low[:-1] + chr(ord(SEPARATOR) + 1)  # every key with the prefix "<batch id>:"
        rows = self.db.execute(f"select external_id, {column} from requests "
                               "where external_id >= ? and external_id < ?", [low, high]).fetchall()
        return {ext[len(low):]: value for ext, value in rows}

    # --- whole tables -----------------------------------------------------------------

    def table_rows(self, table: Table) -> Iterator[dict[str, Any]]:
        names, key = (", ".join(f"[{c}]" for c in cols) for cols in (table.names, table.primary_key))
        cursor = self.db.conn.execute(f"select {names} from [{table.name}] order by {key}")
        for values in cursor:
            yield dict(zip(table.names, values, strict=True))

    def add_rows(self, table: Table, rows: Sequence[dict[str, Any]]) -> int:
        sql = insert_sql(table.name, table.names, "insert or ignore")
        if table.of_request:  # as _MANY_CALLS: never a row pointing at no request
            sql = sql.replace(" values (", " select ", 1).removesuffix(")")
            sql += " where exists (select 1 from requests where id = ?)"
        values = [(*(r[c] for c in table.names), *((r["request_id"],) if table.of_request else ()))
                  for r in rows]
        with self.write() as db:
            return int(db.conn.executemany(sql, values).rowcount)


_LABELLED_DRAFTS = """
    select r.id, r.query, r.domain, r.draft_accepted, c.answer, c.finish_reason, c.id as call_id,
           f.correct as feedback, s.correct as shadow, s.status as shadow_status,
           g.features
    from requests r
    join calls c on c.request_id = r.id and c.seq = 0 and c.role = 'draft' and c.status = 'ok'
    left join quality_labels f on f.request_id = r.id and f.source = 'feedback'
    left join quality_labels s on s.request_id = r.id and s.source = 'shadow'
    left join call_signals g on g.call_id = c.id
    where r.status = 'ok' and (f.correct is not null or s.correct is not null)
    order by r.ts, r.rowid
"""


def _budget(db: Database, user: str) -> BudgetConfig | None:
    cursor = db.conn.execute("select * from budgets where user = ?", [user])  # per request: no savepoint
    row = cursor.fetchone()
    return budget_from_row(dict(zip([d[0] for d in cursor.description], row, strict=True))) if row else None


def _upsert_label(db: Database, row: dict[str, Any]) -> bool:
    """Insert or replace the (request, source) label; True when one was replaced."""
    key = [row["request_id"], row["source"]]
    old = list(db.query("select created_at from quality_labels where request_id = ? and source = ?", key))
    if old:
        row = {**row, "created_at": old[0]["created_at"]}
        db.execute("delete from quality_labels where request_id = ? and source = ?", key)
    db.execute(insert_sql("quality_labels", tuple(row)), list(row.values()))
    return bool(old)


def _chunks(requests: Iterable[RequestRecord], size: int) -> Iterator[list[RequestRecord]]:
    chunk: list[RequestRecord] = []
    for request in requests:
        chunk.append(request)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- appended for `cascade serve` (issue 14): the request insert, shared by Ledger.record and
# the group-commit writer (ledger/group_commit.py), which runs many in one transaction


class PreparedRequest(NamedTuple):
    """A request's statements and values, built before the write lock is taken: under it,
    with 32 batch threads, each statement is also a wait for the GIL that every other
    writer waits behind, so only the statements themselves run there."""

    id: str
    request_values: list[Any]
    calls_sql: str | None
    calls_values: list[Any]
    signals: tuple[CallSignals, ...]


def prepare_request(request: RequestRecord) -> PreparedRequest:
    calls = [call_row(c) for c in request.calls]
    values = [v for c in calls for v in c.values()]
    calls_sql = insert_sql("calls", CALL_COLUMNS, rows=len(calls)) if calls else None
    return PreparedRequest(request.id, list(request_row(request).values()), calls_sql, values,
                           request.signals)


# the id is the only conflict passed over: a second request for a batch row still fails
ONCE = " on conflict (id) do nothing"
_REQUEST_ONCE = insert_sql("requests", REQUEST_COLUMNS, tail=ONCE)


def insert_request(db: Database, request: RequestRecord | PreparedRequest,
                   reservation_id: str | None) -> None:
    """``request`` with its calls and signals, its reservation settled, inside the caller's
    write transaction. Idempotent by request id (a journal replay may have come first)."""
    conn = db.conn
    p = request if isinstance(request, PreparedRequest) else prepare_request(request)
    if reservation_id is not None:
        conn.execute("delete from reservations where id = ?", [reservation_id])
    if conn.execute(_REQUEST_ONCE, p.request_values).rowcount == 0:
        return  # recorded already: idempotent
    if p.calls_sql is not None:
        conn.execute(p.calls_sql, p.calls_values)
    if p.signals:
        insert_signals(db, p.id, p.signals)
    checkpoint("in-commit")
