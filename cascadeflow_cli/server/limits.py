"""Per-key requests-per-minute limits (`cascade key create --rpm N`), shared by every
server on the ledger: each counting alone gave a key N times its limit on N workers
(`--workers N`), N `cascade serve` processes or N hosts.

- A SQLite ledger (one host): a sliding window of request start times in a file per key,
  in ``<ledger>.rpm/`` beside it, read and rewritten under flock by every worker of every
  server on that ledger (one host: CLOCK_MONOTONIC is common to them).
- A PostgreSQL ledger (many hosts): in the database, on its clock (ledger/storage.py
  RateWindows).
- Only when that directory cannot be made: in this process's memory."""

from __future__ import annotations

import fcntl
import math
import os
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cascadeflow_cli.errors import LedgerError
from cascadeflow_cli.ledger.keys import ApiKey
from cascadeflow_cli.ledger.storage import RateWindows
from cascadeflow_cli.server.shapes import ApiError
from cascadeflow_cli.words import count_of

_WINDOW_S = 60.0
_STAMP = struct.Struct("<d")


def _refused(rpm: int, wait_s: float) -> ApiError:
    """The 429 of a key past its limit, whose oldest request leaves the window in ``wait_s``."""
    return ApiError(
        429,
        f"this key may make {count_of(rpm, 'request')} per minute",
        type="requests",
        code="rate_limit_exceeded",
        headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
    )


def _admit(key: ApiKey, times: list[float], now: float) -> list[float]:
    """The window's start times once ``now`` is admitted, else the 429 to answer."""
    rpm = key.rpm or 0
    # a start after ``now`` was stamped before this host's last boot (the monotonic clock
    # began again): it says nothing of this minute
    times = [t for t in times if now - _WINDOW_S < t <= now]
    if len(times) >= rpm:
        raise _refused(rpm, times[0] + _WINDOW_S - now)
    times.append(now)
    return times


class RateLimiter:
    """The window in this process's memory."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, list[float]] = {}

    def check(self, key: ApiKey) -> None:
        if not key.rpm:
            return
        with self._lock:
            self._seen[key.prefix] = _admit(key, self._seen.get(key.prefix, []), self._clock())


def rate_dir(ledger_path: Path) -> Path | None:
    """``<ledger>.rpm/``, made if new (owner only, as the ledger's journal beside it); None
    when it cannot be (the caller counts in memory)."""
    directory = ledger_path.with_name(ledger_path.name + ".rpm")
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        return None
    return directory


class SharedRateLimiter:
    """The window in ``directory``/<key prefix>, read and rewritten under flock by every
    process counting on that ledger. A key without a limit never touches the file."""

    def __init__(self, directory: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self._dir = directory
        self._clock = clock

    def check(self, key: ApiKey) -> None:
        if not key.rpm:
            return
        path = self._dir / key.prefix.encode().hex()  # any prefix: a safe file name
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise _uncounted(path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = os.pread(fd, 1 << 20, 0)
            times = [t for (t,) in _STAMP.iter_unpack(data[: len(data) - len(data) % _STAMP.size])]
            times = _admit(key, times, self._clock())  # raises before anything is written
            os.pwrite(fd, b"".join(_STAMP.pack(t) for t in times), 0)
            os.ftruncate(fd, len(times) * _STAMP.size)
        except OSError as exc:
            raise _uncounted(path, exc) from None
        finally:
            os.close(fd)  # releases the lock


def _uncounted(path: Path, exc: OSError) -> LedgerError:
    """A window file that cannot be read or written (a full disk, a directory made read-only
    for the server's user): a 503 for the limited key (runner), not counting it unlimited.
    It was a plain-text 500 with a traceback (hostile-20)."""
    return LedgerError(f"{path}: cannot count this key's requests per minute: {exc.strerror or exc}")


class LedgerRateLimiter:
    """The window in the ledger's database, on its clock (host clocks may disagree):
    one statement per request of a limited key, shared by every server on the ledger."""

    def __init__(self, store: RateWindows) -> None:
        self._store = store

    def check(self, key: ApiKey) -> None:
        if not key.rpm:
            return
        wait = self._store.admit_request(key.prefix, key.rpm, _WINDOW_S)  # LedgerError: a 503 (runner)
        if wait is not None:
            raise _refused(key.rpm, wait)


Limiter = RateLimiter | SharedRateLimiter | LedgerRateLimiter


def limiter_for(ledger: object) -> Limiter:
    """The windows of ``ledger``'s keys: in its database when it keeps them (PostgreSQL,
    many hosts), else in files beside it (SQLite, one host), else in memory."""
    if isinstance(ledger, RateWindows):
        return LedgerRateLimiter(ledger)
    directory = rate_dir(Path(ledger.path))  # type: ignore[attr-defined]
    return SharedRateLimiter(directory) if directory else RateLimiter()
