"""Connections to a PostgreSQL ledger: one clear error when the server is not there,
transactions retried on serialization failures and deadlocks, and the database's clock.

psycopg is imported here, inside functions, only when a ``postgresql://`` URL is used: the
CLI's start-up never pays for it, and SQLite users need not install it.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from cascadeflow_cli.clock import Clock, SystemClock
from cascadeflow_cli.dburl import LedgerLocation, url_secrets
from cascadeflow_cli.errors import LedgerError, LedgerUnavailableError, MissingExtraError

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")
CONNECT_TIMEOUT_S = 10
RETRIES = 8  # serialization failures / deadlocks: rare, and each retry is a whole transaction
# A lock wait of this long is a lock held for good (a LOCK TABLE, a cascade process stopped
# inside its budget check): without it every check of that user waited for ever. Checks of
# one user queue behind each other for milliseconds. A role's or URL's own setting wins.
LOCK_TIMEOUT = "30s"
# Our writer connections' transactions are a few statements long, never a model call: one
# idle this long belongs to a stopped process, and ending it frees the user's budget lock.
IDLE_IN_TRANSACTION_TIMEOUT = "60s"
# A connection lost mid-command is made again for this long: `pg_ctl restart` (a minor
# upgrade, a config change) has the server away ~1 s, and a batch stopped at its first
# statement with exit 4 (hostile-26). A server still away past it is the same one line.
RECONNECT_WAIT_S = 10.0


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise MissingExtraError("a postgresql:// ledger needs the [postgres] extra: "
                                "pip install 'cascadeflow-cli[postgres]'") from None
    return psycopg


def one_line(exc: BaseException, secrets: Iterable[str | None] = ()) -> str:
    """libpq's message (several lines, tabs) as one line, never holding any of ``secrets``."""
    text = "; ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    text = text.removeprefix("connection failed: ").removeprefix("connection is bad: ")
    text = text.replace("FATAL:  ", "")
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    if getattr(exc, "sqlstate", None) == "55P03":
        text += " (another session holds a lock the ledger needs: see pg_locks and pg_stat_activity)"
    return text


def streamed(rows: Iterator[T], what: str) -> Iterator[T]:
    """A streamed read's rows; an error of the database while it streams (a column dropped
    by hand, the server gone) is the one line every other read gives, not 'unexpected
    UndefinedColumn' with a traceback."""
    try:
        yield from rows
    except _psycopg().Error as exc:
        raise LedgerError(f"{what}: {one_line(exc)}") from None


def session_settings(conn: psycopg.Connection[Any], *, writer: bool) -> None:
    """UTC, and the lock and idle limits above where the role, database or URL set none,
    in one round trip. ``writer``: not a long streamed read (whose transaction is idle
    while its reader writes out a page)."""
    limits = [("lock_timeout", LOCK_TIMEOUT)]
    if writer:
        limits.append(("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION_TIMEOUT))
    conn.execute("; ".join(["set timezone to 'UTC'", *(  # type: ignore[arg-type]  # our constants
        f"select set_config('{name}', '{value}', false) where current_setting('{name}') = '0'"
        for name, value in limits)]))


def connect(location: LedgerLocation) -> psycopg.Connection[Any]:
    """A new connection (autocommit off: every use is an explicit transaction). The
    password, if any, comes from ``password_env`` here, else libpq's own sources."""
    psycopg = _psycopg()
    assert location.url is not None
    password = location.password()
    kwargs: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "cascade"}
    if password is not None:
        kwargs["password"] = password
    try:
        conn = psycopg.connect(location.url, **kwargs)
    except psycopg.Error as exc:
        raise LedgerUnavailableError(f"{location.display()}: cannot connect to the ledger: "
                                     f"{one_line(exc, [password, *url_secrets(location.url)])}") from None
    conn.autocommit = True  # transactions are opened explicitly (conn.transaction())
    _nul_safe_text(conn)
    return conn


NUL_STANDIN = "\ufffd"  # what a U+0000 in a prompt or answer is stored as


def _nul_safe_text(conn: psycopg.Connection[Any]) -> None:
    """Text written through ``conn`` has each U+0000 as U+FFFD: PostgreSQL's text cannot
    hold it, and a prompt holding one (a client may send "\\u0000") must still be recorded
    once paid for; refused, it waited in the side journal forever, and the journal's
    entry then refused every later request of this host."""
    from psycopg.types import string

    # psycopg's own for str; the last registered is also %s's: text of an unknown type, which
    # the server casts to the column's (timestamptz), as before
    for base in (string.StrBinaryDumper, string.StrDumperUnknown):

        class Dumper(base):  # type: ignore[valid-type,misc]
            def dump(self, obj: str) -> Any:
                return super().dump(obj.replace("\x00", NUL_STANDIN) if "\x00" in obj else obj)

        conn.adapters.register_dumper(str, Dumper)


def retryable(exc: BaseException) -> bool:
    """A transaction that lost a race (40001) or a deadlock (40P01): run it again whole."""
    return getattr(exc, "sqlstate", None) in ("40001", "40P01")


def lost_connection(exc: BaseException, conn: psycopg.Connection[Any]) -> bool:
    psycopg = _psycopg()
    return isinstance(exc, psycopg.OperationalError) and conn.closed


def _reconnect_within(reconnect: Callable[[], psycopg.Connection[Any]], seconds: float) -> None:
    """``reconnect``, again with a growing pause while the server refuses (restarting: no
    socket, or 'the database system is starting up') until ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    pause = 0.05
    while True:
        try:
            reconnect()
            return
        except LedgerUnavailableError:
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


def in_transaction(
    get_conn: Callable[[], psycopg.Connection[Any]],
    reconnect: Callable[[], psycopg.Connection[Any]],
    work: Callable[[psycopg.Connection[Any]], T],
    what: str,
    *,
    idempotent: bool = True,
    single: bool = False,
) -> T:
    """Run ``work(conn)`` inside one transaction, again from the start when it lost a race
    (serialization failure, deadlock) or, if ``idempotent``, when the connection dropped
    (its commit may or may not have happened: ``work`` must then be safe to repeat, e.g.
    keyed by an id chosen before the first attempt). Never half-applied: each attempt is
    one transaction, rolled back unless it commits."""
    psycopg = _psycopg()
    pause = 0.005
    for attempt in range(RETRIES):
        conn = get_conn()
        try:
            # one read statement needs no BEGIN/COMMIT: autocommit saves two round trips
            with contextlib.nullcontext() if single else conn.transaction():
                return work(conn)
        except psycopg.Error as exc:
            last = attempt == RETRIES - 1
            if retryable(exc) and not last:
                time.sleep(pause * (1 + random.random()))
                pause = min(pause * 2, 0.5)
                continue
            if idempotent and lost_connection(exc, conn) and not last:
                _reconnect_within(reconnect, RECONNECT_WAIT_S)
                continue
            raise LedgerError(f"{what}: {one_line(exc)}") from None
    raise AssertionError("unreachable")  # pragma: no cover


class DatabaseClock:
    """The database server's clock, as seen from this host: the host clock plus the offset
    measured at connect (midpoint of the round trip). Budget windows and row timestamps
    then agree across hosts whose own clocks disagree: every host counts the day from the
    one clock they share. Re-measured every ``refresh`` so a long-lived server follows it,
    and at once when the host clock is stepped (its elapsed time and the monotonic clock's
    part by over ``STEP``): set back an hour, it kept the old offset until it caught up
    with the last measure, an hour and ten minutes of rows and reservations stamped an hour
    early (a reservation then expired on every other host's check at once)."""

    STEP = timedelta(seconds=1)

    def __init__(self, conn_factory: Callable[[], psycopg.Connection[Any]],
                 refresh: timedelta = timedelta(minutes=10), host: Clock | None = None) -> None:
        self._conn_factory = conn_factory
        self._host = host or SystemClock()
        self._refresh = refresh
        self._measured_at: datetime | None = None
        self._measured_mono = 0.0
        self.offset = timedelta(0)

    def measure(self) -> timedelta:
        conn = self._conn_factory()
        best: tuple[timedelta, timedelta] | None = None
        for _ in range(3):  # keep the sample with the shortest round trip
            before = self._host.now()
            row = conn.execute("select extract(epoch from clock_timestamp())::float8").fetchone()
            after = self._host.now()
            assert row is not None
            rtt = after - before
            offset = datetime.fromtimestamp(row[0], UTC) - (before + rtt / 2)
            if best is None or rtt < best[0]:
                best = (rtt, offset)
        assert best is not None
        self.offset = best[1]
        self._measured_at = self._host.now()
        self._measured_mono = time.monotonic()
        return self.offset

    def now(self) -> datetime:
        host = self._host.now()
        if self._measured_at is None:
            self.measure()
            return self._host.now() + self.offset
        elapsed = host - self._measured_at
        stepped = abs(elapsed - timedelta(seconds=time.monotonic() - self._measured_mono)) > self.STEP
        if elapsed > self._refresh or stepped:
            self.measure()
            host = self._host.now()
        return host + self.offset
