"""Is this file our ledger? Decided before SQLite writes a byte to it.

Opening a ledger switches it to WAL mode and runs the migrations: done to another
program's SQLite file, that would change it for good (WAL is a property of the file) and
then fail on its tables. So an existing file is recognised first, from its 100-byte header
and, for ledgers made before we stamped them, from a read-only look at its schema:

* an empty file is a new ledger (``touch``, or a crash right after we created it);
* SQLite's ``application_id`` header field equal to ours is a ledger;
* ``application_id`` 0 with our ``_migrations`` table is a ledger from before the stamp
  (it gets the stamp on this open); 0 with no tables at all is an empty database;
* anything else is refused, untouched, with a line saying what the file is.

The file is also made owner-only, as a new ledger is: it holds every query and answer.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from cascadeflow_cli.errors import LedgerError

# "CFlw": SQLite's header field for the application that owns the file (PRAGMA application_id)
# the commands that open a ledger read-only (`ledger(read_only=True)`), named in the errors
# of a ledger this user may read but not write
READERS = ("usage, logs, export, budget show, budget list, forecast, key list, anomalies, "
           "calibrate --from-ledger and ledger copy (from it)")

APPLICATION_ID = 0x43466C77
_MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100
_APP_ID_OFFSET = 68
_OWNER_ONLY = stat.S_IRUSR | stat.S_IWUSR


def recognise_ledger(path: Path) -> None:
    """Return if ``path`` is our ledger (or empty), else raise LedgerError. Never writes."""
    try:
        with path.open("rb") as fh:
            header = fh.read(_HEADER_SIZE)
    except OSError as exc:
        raise LedgerError(f"{path}: cannot open ledger: {exc.strerror or exc}") from None
    if not header:
        return
    if len(header) < _HEADER_SIZE or not header.startswith(_MAGIC):
        raise LedgerError(
            f"{path}: cannot open ledger: not a cascade ledger (not an SQLite database); use another --db"
        )
    app_id = int.from_bytes(header[_APP_ID_OFFSET : _APP_ID_OFFSET + 4], "big")
    if app_id == APPLICATION_ID:
        return
    if app_id != 0:
        raise LedgerError(
            f"{path}: cannot open ledger: not a cascade ledger (an SQLite database of another application, "
            f"application_id 0x{app_id:08x}); use another --db"
        )
    tables, migrations = _schema(path)
    if not tables or "001_initial" in migrations:
        return
    shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
    raise LedgerError(
        f"{path}: cannot open ledger: not a cascade ledger (an SQLite database with tables {shown} "
        "and no ledger migrations); use another --db"
    )


def _schema(path: Path) -> tuple[set[str], set[str]]:
    """Table names and applied migration names, read through a read-only connection."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.DatabaseError as exc:
        raise LedgerError(f"{path}: cannot open ledger: {exc}") from None
    try:
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
        migrations: set[str] = set()
        if "_migrations" in tables:
            migrations = {r[0] for r in conn.execute("select name from _migrations")}
        return tables, migrations
    except sqlite3.DatabaseError as exc:
        raise LedgerError(f"{path}: cannot open ledger: {exc}") from None
    finally:
        conn.close()


def mark_as_ledger(conn: sqlite3.Connection) -> None:
    """Stamp our application_id (new ledgers, and old ones on their next open), inside the
    caller's write transaction."""
    if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def make_owner_only(path: Path) -> None:
    """Take group and other permissions off the ledger and its -wal/-shm files, or refuse
    when they are open to others and belong to someone else (we cannot fix those)."""
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            info = file.stat()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise LedgerError(f"{file}: cannot open ledger: {exc.strerror or exc}") from None
        mode = stat.S_IMODE(info.st_mode)
        if not mode & 0o077:
            continue
        if info.st_uid != os.geteuid():
            raise LedgerError(
                f"{file}: the ledger is open to other users (mode {mode:04o}) and belongs to user "
                f"{info.st_uid}, so we cannot make it owner-only; ask its owner to `chmod 600` it, "
                f"or use another --db ({READERS} can still read it)"
            )
        try:
            os.chmod(file, mode & ~0o077 | _OWNER_ONLY)
        except OSError as exc:
            raise LedgerError(f"{file}: cannot make the ledger owner-only: {exc.strerror or exc}") from None
