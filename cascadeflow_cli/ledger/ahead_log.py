"""This process's write-ahead logs in a journal directory (ledger/journal.py says why).

A log is ``ahead-<pid>-<n>.log``: one JSON line per request written ahead (the same
bytes an entry file holds), appended with one ``write`` on an ``O_APPEND`` descriptor, so
threads never interleave their lines. The process holds ``flock(LOCK_EX)`` on each of
its logs for as long as it keeps them: a log made under a temporary name is locked
before it is renamed into view, so nobody ever sees one of ours unlocked. ``recover``
takes only logs whose lock it can get (their process died) and reads them back.

A log past ``MAX_LOG_BYTES``, or one a write failed on (a full disk can leave a torn
line), is left for a new one; a log is deleted once every request in it is settled
(committed, or rewritten as an entry file of its own), and at exit if it is settled.
Without ``fcntl`` (Windows) ``append`` declines and the caller writes a file instead.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not on this platform's CI
    fcntl = None  # type: ignore[assignment]

MAX_LOG_BYTES = 256 << 10  # then a new log (~150 requests): an old one goes once they settle
PREFIX, SUFFIX = "ahead-", ".log"


class _Log:
    __slots__ = ("fd", "path", "size", "unsettled")

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path
        self.size = 0
        self.unsettled: set[str] = set()


class _Logs:
    """The logs this process keeps in one directory: the one appended to, and older ones
    that still hold requests in flight."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.current: _Log | None = None
        self.older: list[_Log] = []
        self.count = 0

    def open_new(self) -> _Log:
        """A new log, locked before anyone can see it."""
        self.count += 1
        path = self.directory / f"{PREFIX}{os.getpid()}-{self.count}{SUFFIX}"
        temp = path.with_name(path.name + ".new")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.replace(temp, path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        log = self.current = _Log(fd, path)
        return log

    def retire(self, log: _Log) -> None:
        """(under the lock) Append no more to ``log``; delete it once it is settled."""
        if self.current is log:
            self.current = None
            self.older.append(log)
        self.drop_settled()

    def drop_settled(self, *, everything: bool = False) -> None:
        """(under the lock) Delete the retired logs (or, at exit, all) that hold nothing unsettled."""
        logs = self.older + ([self.current] if everything and self.current else [])
        for log in logs:
            if log.unsettled:
                continue
            with contextlib.suppress(OSError):
                os.unlink(log.path)
            with contextlib.suppress(OSError):
                os.close(log.fd)
            if log is self.current:
                self.current = None
            else:
                self.older.remove(log)


_lock = threading.Lock()
_logs: dict[Path, _Logs] = {}
_own_files: set[tuple[Path, str]] = set()  # entry files this process wrote and may delete


def append(directory: Path, request_id: str, data: bytes) -> bool:
    """Append ``data`` (one request's entry) to this process's log; False without
    ``flock``. Raises OSError when it cannot be written (that log is then retired)."""
    if fcntl is None:
        return False
    line = data + b"\n"
    with _lock:
        logs = _logs.get(directory)
        if logs is None:
            logs = _logs[directory] = _Logs(directory)
        log = logs.current
        if log is None or log.size >= MAX_LOG_BYTES:
            if log is not None:
                logs.retire(log)
            log = logs.open_new()
        earlier = request_id in log.unsettled  # a line of it before (an escalating draft)
        log.unsettled.add(request_id)  # before the write: the log is not deleted under it
        log.size += len(line)
    # outside the lock: a thread waiting on a lock whose holder waits for the GIL is a convoy
    try:
        written = os.write(log.fd, line)
    except OSError:
        written = -1
    if written != len(line):  # EFBIG, ENOSPC, a short write: a torn line ends this log
        with _lock:
            if not earlier:
                log.unsettled.discard(request_id)  # its one line is torn: nothing of it to keep
            logs.retire(log)
        raise OSError(f"{log.path}: cannot append to the journal")
    return True


def settle(directory: Path, request_id: str) -> None:
    """``request_id`` no longer needs its lines: it is in the ledger, or has a file."""
    with _lock:
        logs = _logs.get(directory)
        if logs is None:
            return
        for log in [logs.current, *logs.older]:
            if log is not None:
                log.unsettled.discard(request_id)
        if logs.older:
            logs.drop_settled()


def own_file(directory: Path, request_id: str) -> None:
    with _lock:
        _own_files.add((directory, request_id))


def disown_file(directory: Path, request_id: str) -> bool:
    """Whether this process wrote an entry file for ``request_id`` (forgotten now)."""
    with _lock:
        key = (directory, request_id)
        if key in _own_files:
            _own_files.discard(key)
            return True
        return False


def recover(directory: Path, keep: Callable[[str, tuple[bytes, ...]], None]) -> None:
    """Hand ``keep(request id, lines)`` each request in the logs of processes that died
    (its last line; a call in flight, journal.write_in_flight, comes with the last whole
    line before it, when there is one; lines that do not parse, torn, are skipped), then
    delete those logs; if ``keep`` fails (OSError) they all stay, for the next try."""
    if fcntl is None:
        return
    try:
        paths = sorted(directory.glob(f"{PREFIX}*{SUFFIX}"), key=_log_order)
    except OSError:
        return
    taken: list[tuple[Path, int]] = []
    entries: dict[str, tuple[bytes, ...]] = {}
    whole: dict[str, bytes] = {}
    try:
        for path in paths:
            fd = _take(path)
            if fd is not None:
                taken.append((path, fd))
                _entries(fd, entries, whole)
        for request_id, line in entries.items():
            keep(request_id, line)
        for path, _ in taken:
            os.unlink(path)
    except OSError:
        return
    finally:
        for _, fd in taken:
            os.close(fd)


def _log_order(path: Path) -> tuple[int, int]:
    """(mtime, n): a process's logs in the order it wrote them."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        mtime = 0
    number = path.name.removesuffix(SUFFIX).rsplit("-", 1)[-1]
    return mtime, int(number) if number.isdigit() else 0


def _take(path: Path) -> int | None:
    """A descriptor holding the lock of a dead process's log; None if it is alive (this
    process's included) or gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.stat(path).st_ino == os.fstat(fd).st_ino:  # not taken and deleted meanwhile
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def _entries(fd: int, entries: dict[str, tuple[bytes, ...]], whole: dict[str, bytes]) -> None:
    """Each request's lines of the log ``fd`` into ``entries`` (a later log's replacing an
    earlier's), its last whole line kept in ``whole`` for a call in flight after it."""
    with os.fdopen(os.dup(fd), "rb") as fh:
        raw = fh.read()
    for line in raw.split(b"\n"):
        try:
            entry = json.loads(line)
            in_flight = "in_flight" in entry
            # a request's entry, a call in flight of it, or a shadow call's (journal.entry_id)
            request_id = (entry["in_flight"]["request"]["id"] if in_flight
                          else entry["shadow"]["call"]["id"] if "shadow" in entry else entry["request"]["id"])
        except (ValueError, KeyError, TypeError):
            continue
        if not isinstance(request_id, str):
            continue
        if in_flight:
            base = whole.get(request_id)
            entries[request_id] = (line,) if base is None else (base, line)
        else:
            whole[request_id] = line
            entries[request_id] = (line,)


def drop_settled_logs() -> None:
    """Delete this process's logs that hold nothing unsettled: at exit, and when `cascade
    serve` has recorded its last request (a worker of `--workers N` ends by the SIGTERM
    uvicorn raises again after its graceful stop, so its atexit handlers never run: its
    settled logs were left for the next command to read back)."""
    with _lock:
        for logs in _logs.values():
            logs.drop_settled(everything=True)


def _in_child() -> None:
    """A forked child keeps none of its parent's logs: their locks are the parent's."""
    global _lock
    _lock = threading.Lock()
    for logs in _logs.values():
        for log in [logs.current, *logs.older]:
            if log is not None:
                with contextlib.suppress(OSError):
                    os.close(log.fd)
    _logs.clear()
    _own_files.clear()


atexit.register(drop_settled_logs)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_in_child)
