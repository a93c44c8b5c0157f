"""Per-key requests-per-minute limits (`cascade key create --rpm N`): a sliding window of
request start times, in this process (one worker), in a file per key that every worker
of `cascade serve --workers N` shares (each worker counting alone gave every key N times
its limit), or, on a PostgreSQL ledger, in the database (ledger/storage.py RateWindows),
so that servers on several hosts count each key's requests together (each host counting
alone gave a key N times its limit on N hosts)."""

from __future__ import annotations

import fcntl
import math
import os
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

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
    times = [t for t in times if t > now - _WINDOW_S]
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


class SharedRateLimiter:
    """The window in ``directory``/<key prefix>, read and rewritten under flock: the
    workers of one server share it (they run on one host, so CLOCK_MONOTONIC is common
    to them). A key without a limit never touches the file."""

    def __init__(self, directory: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self._dir = directory
        self._clock = clock

    def check(self, key: ApiKey) -> None:
        if not key.rpm:
            return
        path = self._dir / key.prefix.encode().hex()  # any prefix: a safe file name
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = os.pread(fd, 1 << 20, 0)
            times = [t for (t,) in _STAMP.iter_unpack(data[: len(data) - len(data) % _STAMP.size])]
            times = _admit(key, times, self._clock())  # raises before anything is written
            os.pwrite(fd, b"".join(_STAMP.pack(t) for t in times), 0)
            os.ftruncate(fd, len(times) * _STAMP.size)
        finally:
            os.close(fd)  # releases the lock


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
