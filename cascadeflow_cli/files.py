"""Writing an output file whole: to a temporary name beside it, renamed into place once
complete, so an interrupted write never leaves a truncated file behind.

Only a regular file (or a path that does not exist yet) can be replaced that way. A FIFO,
a terminal or a device (``--output /dev/null``, ``/dev/stdout``) is written into
directly: renaming over it replaced the node itself, and as root ``--output /dev/null``
turned /dev/null into a regular file holding the ledger. A symlink is followed, so the
file it points to is replaced and the link stays a link.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

NAME_MAX = 255  # bytes in one file name (every Linux and macOS file system we meet)
PATH_MAX = 4096  # bytes in a whole path


def path_problem(text: str) -> str | None:
    """Why ``text`` cannot name a file, or None: empty, a NUL byte (os calls raised
    ValueError 'embedded null byte'), a name or path longer than the system takes (OSError
    'File name too long'). Both came out as 'unexpected ...' from every file option."""
    if not text.strip():
        return "the path is empty"
    if "\x00" in text:
        return "the path holds a NUL byte"
    raw = os.fsencode(text)
    if len(raw) > PATH_MAX:
        return f"the path is {len(raw):,} bytes long, more than the {PATH_MAX:,} a path may hold"
    longest = max(len(part) for part in raw.split(b"/"))
    if longest > NAME_MAX:
        return f"a file name in the path is {longest:,} bytes long, more than the {NAME_MAX} one may hold"
    return None


def expanded(path: Path) -> Path:
    """``path.expanduser()``; a ``~name`` of no user on this system (``~0``) raised
    RuntimeError ('Could not determine home directory'): an 'unexpected RuntimeError'."""
    try:
        return path.expanduser()
    except RuntimeError:
        from cascadeflow_cli.errors import InputError

        raise InputError(f"{path}: no user {path.parts[0][1:]!r} on this system for "
                         f"'{path.parts[0]}' to name their home directory") from None


def is_special(path: Path) -> bool:
    """Whether ``path`` (symlinks followed) exists and is not a regular file or a directory."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one existing file: another spelling, a symlink or a
    hard link (comparing resolved paths misses the last)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# The files SQLite keeps beside a ledger: writing over any of them loses the ledger
SQLITE_SIDECARS = ("", "-wal", "-shm", "-journal")


def is_sqlite_file_of(path: Path, db: Path) -> bool:
    """Whether ``path`` is the SQLite file ``db`` or one of the files SQLite keeps beside it
    (by name too: a -shm or -journal that does not exist yet is SQLite's to create)."""
    where = path.resolve()
    return any(where == (side := db.with_name(db.name + suffix)).resolve() or same_file(path, side)
               for suffix in SQLITE_SIDECARS)


@contextlib.contextmanager
def written_whole(path: Path, mode: str = "w", **open_args: Any) -> Iterator[IO[Any]]:
    """A file object for ``path``: a temporary file renamed over it when the block ends
    without an error (removed otherwise), or ``path`` itself when it is a FIFO or a device.
    OSError from opening, writing or renaming propagates (the caller words it)."""
    if is_special(path):
        with open(path, mode, **open_args) as fh:
            yield fh
        return
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    partial = target.with_name(f".{target.name}.partial")
    fh = open(partial, mode, **open_args)  # noqa: SIM115  (closed below, before the rename)
    try:
        with fh:
            yield fh
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise


# What cascade reads of one input file or stream at most: a config, a calibration, an
# examples file, a query on stdin, a JSON array to import, and one line of a JSONL/CSV
# file. /dev/zero, /dev/urandom or a FIFO that never ends used to be read until the
# kernel killed the process for its memory (or, under a limit, `unexpected MemoryError`).
MAX_INPUT_BYTES = 1 << 30  # 1 GiB: a JSON array import (--format jsonl streams any size)
MAX_TEXT_BYTES = 64 << 20  # 64 MiB: a config, a calibration, a query, one line of a file


class TooLargeError(ValueError):
    """An input passed its cap; the message says which cap and how to get under it."""


def read_capped(fh: IO[bytes], limit: int, what: str) -> bytes:
    """All of ``fh``, or TooLargeError when it holds more than ``limit`` bytes."""
    data = fh.read(limit + 1)
    if len(data) > limit:
        raise TooLargeError(f"{what} is larger than {_size(limit)}, the most cascade reads "
                            "(a file that never ends, such as /dev/zero?)")
    return data


def read_path_capped(path: Path, limit: int = MAX_TEXT_BYTES, what: str | None = None) -> bytes:
    """``path``'s bytes (OSError as for ``Path.read_bytes``), capped as :func:`read_capped`."""
    with path.open("rb") as fh:
        return read_capped(fh, limit, what or str(path))


def capped_lines(fh: IO[bytes], limit: int = MAX_TEXT_BYTES) -> Iterator[bytes]:
    """The lines of ``fh`` (ends kept), TooLargeError at one longer than ``limit``; the
    error's ``line`` is its 1-based number."""
    number = 0
    while line := fh.readline(limit + 1):
        number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            exc = TooLargeError(f"a line is longer than {_size(limit)}, the most cascade reads "
                                "(a file that never ends, such as /dev/zero?)")
            exc.line = number  # type: ignore[attr-defined]
            raise exc
        yield line


def _size(limit: int) -> str:
    return f"{limit >> 30} GiB" if limit >= 1 << 30 else f"{limit >> 20} MiB"
