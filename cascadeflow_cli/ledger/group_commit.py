"""Group commit for a busy SQLite ledger (`cascade serve`): one writer thread runs the
reservations, records and releases of every request in flight, as many as are waiting,
in one ``BEGIN IMMEDIATE`` transaction, each inside a savepoint of its own.

Why: with a thread per request, each of them took the file's write lock twice a request,
and the losers slept in SQLite's busy handler (1, 2, 5, 10... ms), so 50 clients spent
more time waiting for the lock than holding it. Here nobody waits for the lock but the
writer, and a transaction's fixed cost is paid once for the batch.

The guarantees do not change:
- a caller returns only once its work is committed (a reservation is in the ledger,
  visible to every other process, before its provider is called; a record is durable
  like any other commit), and gets the same LedgerError when the commit fails;
- the jobs of a batch run one after another on one connection, so each check sees the
  reservations of those before it: a budget is never overspent;
- a job that raises rolls back to its savepoint only; the rest of the batch commits.

A caller is a thread (it blocks until the commit), or code running for an event-loop
task (`cascade serve`, server/bridge.py: it awaits a future). A task's jobs are gathered
for one loop iteration and committed right there, on a connection of their own, when the
write lock can be had at once (``BEGIN IMMEDIATE`` with no busy wait, WAL: no fsync at
commit, no checkpoint on that connection); when another writer holds it (`--workers N`,
a second server, the writer thread itself) the batch goes to the writer thread, which
waits for the lock off the loop, and the WAL checkpoints (the fsyncs) run there too:
passive ones, which leave the loop's commits alone (``_checkpoint`` says how the WAL stays
bounded).
Why: each hop to the writer thread and back was two wake-ups on the request's path,
and on a loaded machine each one waits for a CPU (a submit waited p50 12-16 ms for a
0.2 ms commit, load ~6); on the loop, a served request's CPU fell from 0.81-0.98 to
0.73-0.83 ms (bench/serve_load.py, 50 clients, one worker, load 10-18).

Stale reservations are dropped at most once a second (``EXPIRE_EVERY_S``): the scan reads
every reservation in flight, which made a check cost O(requests in flight). Dropping them
a little later only keeps a budget stricter for that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from cascadeflow_cli.errors import LedgerError
from cascadeflow_cli.ledger.db import BUSY_TIMEOUT_S
from cascadeflow_cli.ledger.sqlite_store import BudgetTxn, insert_request, prepare_request

if TYPE_CHECKING:
    from cascadeflow_cli.ledger.db import Ledger
    from cascadeflow_cli.ledger.schema import RequestRecord
    from cascadeflow_cli.ledger.sqlite_conn import Database
    from cascadeflow_cli.ledger.storage import BudgetTransaction

_T = TypeVar("_T")


class Awaiter(Protocol):
    """How code running for an event-loop task waits (server/bridge.py): ``active()``
    when the caller is such code, ``wait(future)`` its result, the loop going on meanwhile."""

    def active(self) -> bool: ...

    def wait(self, future: asyncio.Future[Any]) -> Any: ...


EXPIRE_EVERY_S = 1.0
MAX_BATCH = 256  # jobs in one transaction (a bound on how long the write lock is held)
CHECKPOINT_EVERY = 100  # commits on the loop between two passive WAL checkpoints (writer thread)
WAL_LIMIT_BYTES = 64 << 20  # a WAL still this long after a passive checkpoint is restarted at once
IDLE_S = 0.25  # no commit on the loop for this long: the WAL is truncated (nobody waits for it)
# how long a blocking checkpoint waits for another writer, or for readers of the WAL: the
# loop's writes wait with it (a reader in another process, `cascade export`, can be long)
CHECKPOINT_WAIT_MS = 100


class _Job:
    """One caller's work. A thread waits on ``done`` (a lock held until the writer is
    through: cheaper than an Event); a task awaits ``future``, resolved on its loop."""

    __slots__ = ("done", "error", "future", "result", "work")

    def __init__(
        self, work: Callable[[Database], Any], future: asyncio.Future[Any] | None = None
    ) -> None:
        self.work = work
        self.future = future
        self.done: threading.Lock | None = None
        if future is None:
            self.done = threading.Lock()
            self.done.acquire()
        self.result: Any = None
        self.error: BaseException | None = None

    def wait(self) -> Any:
        assert self.done is not None
        self.done.acquire()
        if self.error is not None:
            raise self.error
        return self.result


def _resolve(jobs: list[_Job]) -> None:
    """On the loop: hand each awaiting task its job's outcome."""
    for job in jobs:
        future = job.future
        if future is None or future.done():  # its task was cancelled meanwhile
            continue
        if job.error is not None:
            future.set_exception(job.error)
        else:
            future.set_result(job.result)


def _finish(batch: list[_Job]) -> None:
    """Wake every caller of ``batch``: threads at once, tasks with one wake-up per loop."""
    waiting: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
    for job in batch:
        if job.done is not None:
            job.done.release()
        else:
            assert job.future is not None
            waiting.setdefault(job.future.get_loop(), []).append(job)
    for loop, jobs in waiting.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            loop.call_soon_threadsafe(_resolve, jobs)


def _begin(conn: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, polling every 0.2-2 ms while another process holds the write lock
    (`serve --workers N`, or two servers on one ledger), for the busy timeout at most.
    SQLite's own busy handler sleeps 1, 2, 5, 10, 15... ms, so a writer that came a moment
    after the other's commit slept out most of that step with the lock free."""
    deadline = 0.0
    wait = 0.0002
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")  # the writer's connection has busy_timeout 0 (_loop)
            return
        except sqlite3.OperationalError as exc:
            if not _locked(exc):
                raise
            now = time.monotonic()
            deadline = deadline or now + BUSY_TIMEOUT_S
            if now >= deadline:
                raise
        time.sleep(wait)
        wait = min(wait * 1.5, 0.002)


def _locked(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


class _BatchTxn(BudgetTxn):
    """SQLite's budget transaction over the writer's batch, expiring at most once a second."""

    def __init__(self, db: Database, writer: GroupCommitLedger) -> None:
        super().__init__(db)
        self._writer = writer

    def expire_reservations(self, now: datetime) -> int:
        if time.monotonic() < self._writer.next_expiry:
            return 0
        self._writer.next_expiry = time.monotonic() + EXPIRE_EVERY_S
        return super().expire_reservations(now)


class GroupCommitLedger:
    """A SQLite Ledger whose writer thread (or, for a loop's tasks, the loop itself when
    the lock is free) runs ``run_locked``, ``record`` and ``release``, each returning once
    its work is committed; every other operation is the Ledger's own."""

    def __init__(self, ledger: Ledger, awaiter: Awaiter | None = None) -> None:
        self.ledger = ledger
        self.awaiter = awaiter
        self.next_expiry = 0.0
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        # the jobs of a loop's tasks, for that loop's next commit; its thread's connection
        self._here: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        self._here_local = threading.local()
        self._here_commits = 0
        self._wal_left: int | None = None  # the loop's commit count when a checkpoint left a WAL
        self._page_bytes = 0
        self._restart_at = WAL_LIMIT_BYTES  # a WAL this long is restarted (grows past a failed try)
        # the writer thread's checkpoint holds the write lock: the loop's batches go to it
        self._checkpointing = False

    # --- the LedgerStore operations it takes over ---------------------------------

    def run_locked(self, user: str, teams: Sequence[str], decide: Callable[[BudgetTransaction], _T]) -> _T:
        return self._submit(lambda db: decide(_BatchTxn(db, self)))  # type: ignore[no-any-return]

    def record(self, request: RequestRecord, reservation_id: str | None = None) -> None:
        prepared = prepare_request(request)  # as Ledger.record: the rows built before the write lock
        self._submit(lambda db: insert_request(db, prepared, reservation_id))

    def release(self, reservation_id: str | None) -> None:
        if reservation_id is not None:
            self._submit(lambda db: db.execute("delete from reservations where id = ?", [reservation_id]))

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.ledger, name)
        if inspect.ismethod(value) and value.__self__ is self.ledger:
            setattr(self, name, value)  # a bound method never changes: looked up once (2% of a request)
        return value

    def __enter__(self) -> GroupCommitLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Finish what is queued, stop the thread, close the ledger."""
        self.stop()
        self.ledger.close()

    def stop(self) -> None:
        """Finish what is queued, then stop the thread (later work runs on the caller's)."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            thread.join()

    # --- the writer ---------------------------------------------------------------

    def _submit(self, work: Callable[[Database], Any]) -> Any:
        awaiter = self.awaiter
        if awaiter is not None and awaiter.active():  # a task's code (server/bridge.py): await it
            loop = asyncio.get_running_loop()
            job = _Job(work, loop.create_future())
            if self._closed:  # shutting down: a last request is written the plain way
                return self._run_alone(job)
            waiting = self._here.get(loop)
            if waiting is None:  # the jobs of every task that runs before it, in one commit
                waiting = self._here[loop] = []
                loop.call_soon(self._commit_here, loop)
            waiting.append(job)
            return awaiter.wait(job.future)
        job = _Job(work)
        if not self._hand_over([job]):
            return self._run_alone(job)
        return job.wait()

    def _hand_over(self, jobs: Sequence[_Job | None]) -> bool:
        """``jobs`` to the writer thread (started if need be); False once it is stopped."""
        with self._lock:
            if self._closed:
                return False
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="ledger-writer", daemon=True)
                self._thread.start()
            for job in jobs:
                self._jobs.put(job)
        return True

    # --- the commit on the loop ---------------------------------------------------

    def _commit_here(self, loop: asyncio.AbstractEventLoop) -> None:
        """On ``loop``: the jobs its tasks submitted since the last call, committed here if
        the write lock is free at once, else by the writer thread (it waits for the lock)."""
        batch = self._here.pop(loop, [])
        while batch:
            part, batch = batch[:MAX_BATCH], batch[MAX_BATCH:]
            if not self._checkpointing and self._try_commit(part):
                _resolve(part)
            elif not self._hand_over(part):
                for job in part:
                    try:
                        job.result = self._run_alone(job)
                    except BaseException as exc:
                        job.error = exc
                _resolve(part)

    def _try_commit(self, batch: list[_Job]) -> bool:
        """``batch`` in one transaction on the loop's connection; False, with nothing
        done, when another connection holds the write lock (or this one cannot be had)."""
        try:
            db = self._loop_db()
            conn = db.conn
            conn.execute("BEGIN IMMEDIATE")
        except (sqlite3.DatabaseError, LedgerError):
            return False  # the writer thread waits for the lock, or says why it cannot write
        try:
            self._run_jobs(db, batch)
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            _rollback(conn)
            if _locked(exc):
                return False  # nothing was committed: the writer thread does it all again
            self._fail(batch, LedgerError(f"{self.ledger.path}: cannot write ledger: {exc}"))
        except BaseException as exc:
            _rollback(conn)
            self._fail(batch, _ledger_error(self.ledger.path, exc))
        self._here_commits += 1
        if self._here_commits % CHECKPOINT_EVERY == 0:
            self._hand_over([_CHECKPOINT])
        return True

    def _loop_db(self) -> Database:
        db: Database | None = getattr(self._here_local, "db", None)
        if db is None:
            db = self.ledger.new_connection()
            conn = db.conn
            conn.execute("PRAGMA busy_timeout = 0")  # never wait for the lock on the loop
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # its fsyncs: on the writer thread
            # a WAL the writer thread restarted past its limit is cut back to it at the next commit
            conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
            with contextlib.suppress(sqlite3.DatabaseError):
                conn.execute("PRAGMA temp_store=MEMORY")  # see _loop
            self._here_local.db = db
        return db

    @staticmethod
    def _fail(batch: list[_Job], error: BaseException) -> None:
        for job in batch:
            job.result, job.error = None, error

    def _run_alone(self, job: _Job) -> Any:
        with self.ledger.write() as db:
            return job.work(db)

    def _loop(self) -> None:
        with contextlib.suppress(sqlite3.DatabaseError):  # then they stay files: slower, as correct
            # each job's savepoint keeps the pages it changes in a sub-journal, a temporary
            # file by default: one created and unlinked per batch, and a write per page
            # (strace, 50 clients); in memory, it is a copy
            self.ledger.db.conn.execute("PRAGMA temp_store=MEMORY")
            # no sleeping busy handler: _begin polls for the write lock itself (once it
            # holds it, a WAL writer's statements never wait for another process)
            self.ledger.db.conn.execute("PRAGMA busy_timeout = 0")
        while True:
            try:  # with a WAL left behind, it waits no longer than IDLE_S: then it truncates it
                first = self._jobs.get(timeout=None if self._wal_left is None else IDLE_S)
            except queue.Empty:
                self._when_idle()
                continue
            if first is None:
                return
            batch = [first]
            stop = checkpoint = False
            while len(batch) < MAX_BATCH:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            if _CHECKPOINT in batch:
                batch = [job for job in batch if job is not _CHECKPOINT]
                checkpoint = True
            if batch:
                self._commit(batch)
            if checkpoint:  # the loop's commits leave the WAL to grow: copy it back, off the loop
                self._checkpoint()
            if stop:
                return

    def _checkpoint(self) -> None:
        """The WAL copied back into the file, PASSIVE: it never takes the write lock, so
        the loop goes on committing meanwhile (the fsyncs are this thread's). A TRUNCATE
        held the lock for its fsyncs: 10-16 in 8 s of 50 clients, 28-48 ms each (load
        12-16), and the loop's jobs of that time fell to this thread (4.5-6.6% of them);
        now 0.0-0.3%, two or three restarts a run of 9-19 ms each.

        A passive checkpoint cannot empty a WAL the loop keeps appending to (SQLite starts
        it over only when a writer finds it wholly copied back), so under load it grows:
        past WAL_LIMIT_BYTES it is restarted here (a short block: most of it was just
        copied); once the loop is idle it is truncated (``_when_idle``)."""
        conn = self.ledger.db.conn
        with contextlib.suppress(sqlite3.DatabaseError):
            _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames > 0:
                self._wal_left = self._here_commits
            wal_bytes = frames * self._page_size(conn)
            if wal_bytes >= self._restart_at:
                # not through (a reader held the WAL): the next try when it is longer by as much
                done = self._blocking_checkpoint("RESTART")
                self._restart_at = WAL_LIMIT_BYTES if done else wal_bytes + WAL_LIMIT_BYTES

    def _when_idle(self) -> None:
        """No job for IDLE_S: if the loop has not committed either, the WAL is emptied
        (TRUNCATE: the file back to nothing), which keeps no writer waiting now. Tried
        once: if another process writes meanwhile, its own checkpoints are its business
        (retrying here would hold up its writes for each try)."""
        if self._wal_left != self._here_commits:  # the loop is still writing: look again later
            self._wal_left = self._here_commits
            return
        self._wal_left = None
        self._blocking_checkpoint("TRUNCATE")

    def _blocking_checkpoint(self, mode: str) -> bool:
        """A checkpoint that takes the write lock (RESTART or TRUNCATE). Meanwhile the
        loop begins no transaction (its batches come here, committed after it), so this
        waits only for the one in progress: SQLite's busy handler, sleeping 1, 2, 5, 10...
        ms between tries, lost to a loop committing at once again (300 commits in a row:
        one checkpoint got through, the WAL grew to 1.3 MB past a 0.2 MB limit). Another
        process's writer, and the readers of the WAL (RESTART waits for them too), are
        waited for CHECKPOINT_WAIT_MS at most; past it the WAL stays. True when it is
        wholly copied back (and started over)."""
        conn = self.ledger.db.conn
        self._checkpointing = True
        try:
            conn.execute(f"PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS}")
            try:
                busy, _frames, _copied = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            finally:
                conn.execute("PRAGMA busy_timeout = 0")  # _begin polls for the lock itself
        except sqlite3.DatabaseError:
            return False
        finally:
            self._checkpointing = False
        return not busy

    def _page_size(self, conn: sqlite3.Connection) -> int:
        if not self._page_bytes:
            self._page_bytes = int(conn.execute("PRAGMA page_size").fetchone()[0])
        return self._page_bytes

    def _commit(self, batch: list[_Job]) -> None:
        try:
            with self.ledger.write(_begin) as db:
                self._run_jobs(db, batch)
        except LedgerError as exc:
            self._fail(batch, exc)
        except BaseException as exc:  # not a database error: still, nothing was committed
            self._fail(batch, _ledger_error(self.ledger.path, exc))
        finally:
            _finish(batch)

    def _run_jobs(self, db: Database, batch: list[_Job]) -> None:
        """Each job of ``batch`` in a savepoint of its own, inside the caller's transaction."""
        conn = db.conn
        for job in batch:
            job.error = None  # a batch the loop gave up on runs again here
            conn.execute("SAVEPOINT job")
            try:
                job.result = job.work(db)
            except BaseException as exc:
                conn.execute("ROLLBACK TO job")  # raises when the transaction is lost
                job.error = (
                    LedgerError(f"{self.ledger.path}: cannot write ledger: {exc}")
                    if isinstance(exc, sqlite3.DatabaseError)
                    else exc
                )
            conn.execute("RELEASE job")


_CHECKPOINT = _Job(lambda db: None)  # a job for the writer thread: checkpoint the WAL


def _ledger_error(path: Any, exc: BaseException) -> LedgerError:
    if isinstance(exc, LedgerError):
        return exc
    if isinstance(exc, sqlite3.DatabaseError):
        return LedgerError(f"{path}: cannot write ledger: {exc}")
    return LedgerError(f"{path}: cannot write ledger: {type(exc).__name__}: {exc}")


def _rollback(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.DatabaseError):
        if conn.in_transaction:
            conn.execute("ROLLBACK")
