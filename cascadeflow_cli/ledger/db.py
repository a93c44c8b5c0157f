"""The SQLite ledger: schema, migrations, and one writer transaction per request.

WAL lets readers run while a writer commits; ``BEGIN IMMEDIATE`` takes the write lock
up front, so two processes never interleave half of a request each, and a busy timeout
makes the second writer wait instead of failing.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cascadeflow_cli.clock import Clock, SystemClock, format_ts
from cascadeflow_cli.errors import LedgerError, LedgerSchemaError
from cascadeflow_cli.ledger import journal
from cascadeflow_cli.ledger.budgets import spend_triggers
from cascadeflow_cli.ledger.recognise import (
    APPLICATION_ID,
    READERS,
    make_owner_only,
    mark_as_ledger,
    recognise_ledger,
)
from cascadeflow_cli.ledger.schema import (
    M001,
    M002,
    M003,
    M004,
    M005,
    M006,
    M007,
    M008,
    MIGRATIONS_TABLE,
    RequestRecord,
    call_row,
    request_row,
)
from cascadeflow_cli.ledger.schema_ddl import migration_ddl, table_ddl
from cascadeflow_cli.ledger.sqlite_conn import Database
from cascadeflow_cli.ledger.sqlite_keys import SqliteKeyQueries
from cascadeflow_cli.ledger.sqlite_readonly import (
    check_readable,
    connect_read_only,
    count_waiting,
    needs_read_only,
)
from cascadeflow_cli.ledger.sqlite_store import SqliteQueries, insert_request, prepare_request

BUSY_TIMEOUT_S = 30.0
MIN_FREE_BYTES = 1 << 20  # less free disk than this: refuse a request before paying for it


def _tables(name: str) -> Callable[[sqlite3.Connection], None]:
    """The migration ``name`` as ledger/schema.py declares it: its tables, columns and indexes."""

    def migrate(conn: sqlite3.Connection) -> None:
        for sql in migration_ddl(name):
            conn.execute(sql)

    return migrate


def _then(*steps: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
    def migrate(conn: sqlite3.Connection) -> None:
        for step in steps:
            step(conn)

    return migrate


# Append only: a migration, once released, never changes (nor do the schema's `since` tags).
# The triggers and backfill of 002 are SQLite's own SQL (ledger/budgets.py).
MIGRATIONS: list[tuple[str, Callable[[sqlite3.Connection], None]]] = [
    (M001, _tables(M001)),
    (M002, _then(_tables(M002), spend_triggers)),
    (M003, _tables(M003)),
    (M004, _tables(M004)),
    (M005, _tables(M005)),
    (M006, _tables(M006)),
    (M007, _tables(M007)),
    (M008, _tables(M008)),
]


class Ledger(SqliteQueries, SqliteKeyQueries):
    """The ledger file: the SQLite implementation of LedgerStore (ledger/storage.py; the
    queries are in ledger/sqlite_store.py). Cheap to open. Each thread gets its own SQLite
    connection (SQLite's own locking then serialises writers across threads and processes alike)."""

    def __init__(self, path: Path, clock: Clock | None = None, *, read_only: bool = False) -> None:
        """``read_only``: the command only reads, so a file it may not write is opened
        read-only (sqlite_readonly.py) instead of refused."""
        self.path = path
        self.clock = clock or SystemClock()
        self._local = threading.local()
        self._connections: list[Database] = []
        self._connections_lock = threading.Lock()
        # a reader of no ledger reads an empty one in memory: `usage` on a fresh path made
        # the file and its directories (hostile-11), even under a HOME that does not exist
        self.absent = read_only and not os.path.lexists(path)
        self.read_only = read_only and (self.absent or needs_read_only(path))
        if self.absent:
            pass
        elif self.read_only:
            check_readable(path)
        else:
            _prepare_file(path)
        try:
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{path}: cannot open ledger: {exc}") from None
        self.journal_error: str | None = None  # why the ledger refused a journal entry
        self.journal_refused: list[tuple[Path, str]] = []  # entries quarantined at open, and why
        self.journal_waiting = (count_waiting(journal.journal_dir(path)) if self.read_only
                                else self.replay_journal())

    # --- the side journal (ledger/journal.py) --------------------------------------

    def replay_journal(self) -> int:
        """Record the paid requests waiting in the side journal (journal.replay_all):
        returns how many still wait."""
        return journal.replay_all(self)

    def writable(self) -> bool:
        return os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK | os.X_OK)

    def check_writable(self) -> None:
        """Before anything is paid for: the ledger file and its directory (where SQLite
        keeps its -wal file and we the journal) can be written, and the disk has room."""
        journal.retry_refused(self)
        if not self.writable():
            raise LedgerError(f"{self.path}: cannot write ledger: the file or its directory is read-only "
                              "(nothing was sent to a provider)")
        if self.journal_waiting:  # spend the ledger has not taken: budgets would run ahead of it
            raise LedgerError(f"{self.path}: {self.journal_waiting} answered request(s) in "
                              f"{journal.journal_dir(self.path)} cannot be recorded"
                              f"{journal.why(self.journal_error)}; nothing was sent")
        try:
            fs = os.statvfs(self.path.parent)
        except OSError:
            return
        if fs.f_bavail * fs.f_frsize < MIN_FREE_BYTES:
            raise LedgerError(f"{self.path}: cannot write ledger: the disk is full "
                              "(nothing was sent to a provider)")

    @property
    def db(self) -> Database:
        """This thread's connection."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            self._local.db = db
        return db

    def _connect(self) -> Database:
        try:
            if self.absent:  # one shared database per Ledger, kept while a connection is open
                conn = sqlite3.connect(f"file:cascade-absent-{id(self)}?mode=memory&cache=shared",
                                       uri=True, check_same_thread=False)
            elif self.read_only:
                conn = connect_read_only(self.path, BUSY_TIMEOUT_S)
            else:
                conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, check_same_thread=False)
                _use_wal(conn)
                conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            if not self.read_only and not self.writable():  # a writer in a read-only directory
                raise LedgerError(f"{self.path}: cannot write ledger: the file or its directory is "
                                  f"read-only ({READERS} can still read it)") from None
            raise LedgerError(f"{self.path}: cannot open ledger: {exc}") from None
        db = Database(conn)
        with self._connections_lock:
            self._connections.append(db)
        return db

    def new_connection(self) -> Database:
        """A connection of its own (not this thread's), closed with the ledger."""
        return self._connect()

    def close(self) -> None:
        with self._connections_lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def write(self, begin: Callable[[sqlite3.Connection], None] | None = None) -> Iterator[Database]:
        """One writer transaction, taken with BEGIN IMMEDIATE (by ``begin``, when given: a
        way of its own to wait for the lock); rolled back on any error (Ctrl-C included),
        so a request is in the ledger whole or not at all."""
        db = self.db
        conn = db.conn
        try:
            if begin is None:
                conn.execute("BEGIN IMMEDIATE")
            else:
                begin(conn)
        except sqlite3.OperationalError as exc:
            raise LedgerError(f"{self.path}: cannot write ledger: {exc}") from None
        try:
            yield db
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            _rollback(conn)
            raise LedgerError(f"{self.path}: cannot write ledger: {exc}") from None
        except BaseException:
            _rollback(conn)
            raise

    def _migrate(self) -> None:
        if self._migrated():  # nothing to do: a reader need not wait for a writer's lock (WAL)
            return
        if self.read_only and not self.absent:
            raise LedgerError(f"{self.path}: cannot read ledger: it needs an upgrade this user cannot "
                              "write; have its owner run any cascade command on it once")
        with self.write() as db:
            conn = db.conn
            [create] = table_ddl(MIGRATIONS_TABLE, MIGRATIONS_TABLE.since)
            conn.execute(create.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1))
            done = {row[0] for row in conn.execute("select name from _migrations")}
            # as on PostgreSQL (postgres/migrate.check_not_newer): a newer cascade's ledger
            # was once written as if it were ours, whatever its new columns mean
            unknown = sorted(done - {name for name, _ in MIGRATIONS})
            if unknown:
                raise LedgerSchemaError(
                    f"{self.path}: the ledger's schema is newer than this cascade (migration "
                    f"{unknown[0]}); upgrade cascade (the ledger is left untouched)")
            for number, (name, migrate) in enumerate(MIGRATIONS, start=1):
                if name not in done:
                    migrate(conn)
                    conn.execute("insert into _migrations (id, name, applied_at) values (?, ?, ?)",
                                 [number, name, format_ts(self.clock.now())])
            mark_as_ledger(conn)

    def _migrated(self) -> bool:
        """Every migration applied and the file stamped as a ledger, read without the write
        lock: every command took it at open, so `usage` or `logs` waited 30 s behind a long
        import or copy and then failed with 'cannot write ledger: database is locked'."""
        try:
            conn = self.db.conn
            if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
                return False
            done = {row[0] for row in conn.execute("select name from _migrations")}
        except sqlite3.OperationalError:  # no _migrations table yet: a new file
            return False
        return done == {name for name, _ in MIGRATIONS}

    # --- writing ------------------------------------------------------------------

    def record(self, request: RequestRecord, reservation_id: str | None = None) -> None:
        """Store a request and its calls in one transaction, settling its budget
        reservation in the same one (so spend is never counted twice or not at all)."""
        prepared = prepare_request(request)  # before the write lock (sqlite_store.py says why)
        with self.write() as db:
            insert_request(db, prepared, reservation_id)

    # --- reading ------------------------------------------------------------------

    def recent_requests(
        self, limit: int | None = 10, user: str | None = None, since: str | None = None
    ) -> list[dict[str, Any]]:
        """Requests newest first, each with its calls (in call order)."""
        where, params = [], []
        if user is not None:
            where.append("user = ?")
            params.append(user)
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        sql = "select * from requests"
        if where:
            sql += " where " + " and ".join(where)
        sql += " order by ts desc, rowid desc"
        if limit:
            sql += f" limit {int(limit)}"
        requests = list(self.db.query(sql, params))
        if not requests:
            return []
        ids = [r["id"] for r in requests]
        marks = ",".join("?" * len(ids))
        calls: dict[str, list[dict[str, Any]]] = {}
        for call in self.db.query(f"select * from calls where request_id in ({marks}) order by seq", ids):
            calls.setdefault(call["request_id"], []).append(call)
        for r in requests:
            r["calls"] = calls.get(r["id"], [])
        return requests


def open_ledger(path: Path, clock: Clock | None = None, *, read_only: bool = False) -> Ledger:
    return Ledger(path, clock, read_only=read_only)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _prepare_file(path: Path) -> None:
    """Create the ledger owner-only (0600, directory 0700) before SQLite touches it;
    SQLite gives its -wal and -shm files the database file's permissions. An existing
    file is recognised as a ledger (else refused, untouched) and made owner-only."""
    try:
        if path.exists():
            if path.is_dir():
                raise LedgerError(f"{path}: is a directory, not a ledger file")
            if not path.is_file():  # /dev/null was made 0600 for everyone, a FIFO hung at open
                raise LedgerError(f"{path}: not a regular file (a device or a FIFO), not a ledger file")
            if not os.access(path, os.R_OK):
                raise LedgerError(f"{path}: permission denied")
            recognise_ledger(path)
            make_owner_only(path)
            return
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, stat.S_IRUSR | stat.S_IWUSR)
        os.close(fd)
    except FileExistsError:
        if path.is_symlink() and not path.exists():  # O_EXCL refuses any link: not a race
            _broken_link(path)
        return  # another process created it first
    except OSError as exc:
        raise LedgerError(f"{path}: cannot create ledger: {exc.strerror or exc}") from None


def _use_wal(conn: sqlite3.Connection) -> None:
    """Put a new ledger file in WAL mode (it is a property of the file: switched once, not
    on every connection). Two processes opening a fresh ledger together can make the
    switch fail at once with "database is locked": SQLite skips the busy handler where
    waiting could deadlock. So the switch is retried, with backoff, for the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    pause = 0.01
    while conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            contended = "locked" in str(exc) or "busy" in str(exc)
            if not contended or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


# older names of the row conversions (bench/forecast_speed.py builds rows with them)
_request_row = request_row
_call_row = call_row


def _broken_link(path: Path) -> None:
    """A ledger path that is a symbolic link loop, or a link to a file that is not there:
    it read 'the file or its directory is read-only', which it is not."""
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LedgerError(f"{path}: a loop of symbolic links, not a ledger file") from None
    raise LedgerError(f"{path}: a symbolic link to {os.readlink(path)}, which does not exist; "
                      "create the ledger there or use another --db")
