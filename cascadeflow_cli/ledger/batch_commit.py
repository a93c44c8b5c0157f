"""Group commit for `cascade batch` on SQLite: the group-commit writer of `cascade serve`
(ledger/group_commit.py), with the records of a batch inserted by a few statements for
all of them instead of a few statements each.

Why: under the file's write lock every statement is also a wait for the GIL (the sqlite3
module lets it go around each step), and with 32 worker threads that wait is what a
commit costs: measured in-process on 3,000 rows (load ~20), a per-thread commit held the
lock for ~2 ms, which capped the whole batch at ~500 rows a second whatever its
concurrency, and the busy handler's sleeps (1, 2, 5, 10 ms...) made each row wait ~9 ms
for its turn. Here the lock is held for seven statements a group, however many rows it has.

The guarantees are the group-commit writer's: a caller returns once its record is
committed, and gets the LedgerError if it was not; reservations and releases run first,
one by one in the same transaction (a budget is never overspent); and when the shared
statements fail (a second request for a batch row, say), the group's records go again in
a transaction of their own, one by one in savepoints, so one bad record takes no other down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cascadeflow_cli.faults import checkpoint
from cascadeflow_cli.ledger.group_commit import GroupCommitLedger, _finish, _Job
from cascadeflow_cli.ledger.schema import CALL_COLUMNS, REQUEST_COLUMNS
from cascadeflow_cli.ledger.sqlite_conn import insert_sql
from cascadeflow_cli.ledger.sqlite_store import (
    ONCE,
    PreparedRequest,
    insert_request,
    insert_signals,
    prepare_request,
)

if TYPE_CHECKING:
    import sqlite3

    from cascadeflow_cli.ledger.schema import RequestRecord
    from cascadeflow_cli.ledger.sqlite_conn import Database

MAX_VARIABLES = 32766  # SQLite's default limit of ? in one statement (3.32 and later)


class _RecordWork:
    """A record job's work, which the writer may also do for many at once."""

    __slots__ = ("prepared", "reservation_id")

    def __init__(self, prepared: PreparedRequest, reservation_id: str | None) -> None:
        self.prepared = prepared
        self.reservation_id = reservation_id

    def __call__(self, db: Database) -> None:
        insert_request(db, self.prepared, self.reservation_id)


class BatchCommitLedger(GroupCommitLedger):
    def record(self, request: RequestRecord, reservation_id: str | None = None) -> None:
        self._submit(_RecordWork(prepare_request(request), reservation_id))  # built outside the lock

    def _commit(self, batch: list[_Job]) -> None:
        """The records of ``batch`` as one job, after the others (reservations first, as
        they came); if that job fails, the records again, one by one in savepoints."""
        records = [job for job in batch if isinstance(job.work, _RecordWork)]
        if len(records) < 2:
            super()._commit(batch)
            return
        works: list[_RecordWork] = [job.work for job in records]  # type: ignore[misc]
        group = _Job(lambda db: _insert_all(db, works))
        super()._commit([*(job for job in batch if job not in records), group])
        if group.error is not None:
            super()._commit(records)  # the bad one fails alone (or all do, as before)
            return
        _finish(records)


def _insert_all(db: Database, works: list[_RecordWork]) -> None:
    """Every request of the group with its calls and signals, reservations settled.
    Idempotent by id like insert_request: a request already there is passed over, and
    so are its calls (same ids); any other conflict fails the statement, and the group."""
    conn = db.conn
    reservations = [w.reservation_id for w in works if w.reservation_id is not None]
    if reservations:
        conn.execute(
            f"delete from reservations where id in ({', '.join('?' * len(reservations))})", reservations
        )
    requests = [w.prepared for w in works]
    _insert_rows(conn, "requests", REQUEST_COLUMNS, [v for p in requests for v in p.request_values])
    _insert_rows(conn, "calls", CALL_COLUMNS, [v for p in requests for v in p.calls_values])
    for p in requests:
        if p.signals:
            insert_signals(db, p.id, p.signals, verb="insert or ignore")
    checkpoint("in-commit")


def _insert_rows(conn: sqlite3.Connection, table: str, columns: tuple[str, ...], values: list[Any]) -> None:
    """``values`` (rows of ``columns``, flattened) in as few statements as SQLite allows."""
    step = MAX_VARIABLES // len(columns) * len(columns)
    for start in range(0, len(values), step):
        part = values[start : start + step]
        conn.execute(insert_sql(table, columns, rows=len(part) // len(columns), tail=ONCE), part)

