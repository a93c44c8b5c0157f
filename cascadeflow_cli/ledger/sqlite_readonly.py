"""Reading a SQLite ledger this user may not write (hostile-7): another user's 0644
ledger, a file made immutable, or one's own in a read-only directory. The read-only
commands (``recognise.READERS``) opened it like a writer and failed:
'the ledger is open to other users ... cannot make it owner-only', or 'attempt to write a
readonly database' (a WAL reader needs the -shm file, which it cannot create in a
read-only directory). They now open it with ``mode=ro``, and with ``immutable=1`` when
even that fails and no write-ahead log holds commits (nobody is writing, then)."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from urllib.parse import quote

from cascadeflow_cli.errors import LedgerError
from cascadeflow_cli.ledger.recognise import recognise_ledger


def needs_read_only(path: Path) -> bool:
    """A reader must not open ``path`` as a writer: the file or its directory is not
    writable, or the file is open to others and not ours (we could not keep what we
    write owner-only, nor the -wal/-shm files SQLite would make)."""
    try:
        info = path.stat()
    except OSError:
        return False  # no ledger yet: made as usual
    if not stat.S_ISREG(info.st_mode):
        return False  # refused with its own message by the writer's open
    if info.st_uid != os.geteuid() and stat.S_IMODE(info.st_mode) & 0o077:
        return True
    return not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK))


def check_readable(path: Path) -> None:
    if not os.access(path, os.R_OK):
        raise LedgerError(f"{path}: permission denied")
    recognise_ledger(path)  # a foreign file is refused, read-only or not


def connect_read_only(path: Path, timeout: float) -> sqlite3.Connection:
    """A connection that never writes the file nor makes one next to it (where it can)."""
    base = f"file:{quote(str(path))}?mode=ro"
    conn = sqlite3.connect(base, uri=True, timeout=timeout, check_same_thread=False)
    try:
        conn.execute("select count(*) from sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:  # a WAL file whose -shm cannot be made here
        conn.close()
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:  # commits not yet in the file: immutable would miss them
        raise LedgerError(f"{path}: cannot read ledger: its write-ahead log {wal.name} holds commits "
                          "and the directory is read-only; ask its owner to open it once (any command)")
    return sqlite3.connect(base + "&immutable=1", uri=True, timeout=timeout, check_same_thread=False)


def count_waiting(journal_dir: Path) -> int:
    """The journal entries a read-only open leaves waiting (it cannot record them)."""
    try:
        return sum(1 for _ in journal_dir.glob("*.json"))
    except OSError:
        return 0
