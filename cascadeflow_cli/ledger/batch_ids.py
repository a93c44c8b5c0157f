"""Batch rows in the ledger: which run of `cascade batch` made a request, for which input row.

A batch run has an id, kept in the ``batches`` table with the output file it writes. Every
request the run makes carries ``external_id = "<batch id>:<row key>"``, under a unique
index, so one run can never record the same input row twice. ``--resume`` finds the run
that last wrote the output file and asks the ledger which rows already committed: a row
whose transaction committed just before a crash (its output line never written) is then
copied from the ledger instead of being asked, and paid for, a second time.

Functions here take a :class:`~cascadeflow_cli.ledger.db.Ledger`; none is imported at
module level, so ``db.py`` can import the migration without a cycle.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:

    from cascadeflow_cli.ledger.db import Ledger

SEPARATOR = ":"


def external_id(batch_id: str, row_key: str) -> str:
    return f"{batch_id}{SEPARATOR}{row_key}"


def start_batch(ledger: Ledger, output: Path | None, input_path: Path) -> str:
    """Register a new batch run writing ``output`` (None: stdout) and return its id."""
    from cascadeflow_cli.clock import format_ts

    batch_id = uuid.uuid4().hex[:16]
    with ledger.write() as db:
        db["batches"].insert({
            "id": batch_id, "output": str(output) if output else None,
            "input": str(input_path), "started_at": format_ts(ledger.clock.now()),
        })
    return batch_id


def latest_batch(ledger: Ledger, output: Path) -> str | None:
    """The id of the newest run that wrote ``output``, if this ledger knows one."""
    row = ledger.db.conn.execute(
        "select id from batches where output = ? order by started_at desc, rowid desc limit 1",
        [str(output)]).fetchone()
    return row[0] if row else None


def committed_rows(ledger: Ledger, batch_id: str) -> dict[str, str]:
    """``row key -> request id`` for every request of run ``batch_id`` in the ledger,
    whatever its status: each one settles its row (and the unique index would refuse a
    second request for it anyway)."""
    low = external_id(batch_id, "")
    high = low[:-1] + chr(ord(SEPARATOR) + 1)  # every key with the prefix "<batch id>:"
    rows = ledger.db.conn.execute("select external_id, id from requests "
                                  "where external_id >= ? and external_id < ?", [low, high]).fetchall()
    return {ext[len(low):]: request_id for ext, request_id in rows}


def load_request(ledger: Ledger, request_id: str) -> dict[str, Any]:
    """One request row with its calls (in call order), shaped like ``recent_requests``.
    (A request and its calls commit together, so the second read sees them all.)"""
    conn = ledger.db.conn
    cursor = conn.execute("select * from requests where id = ?", [request_id])
    names = [d[0] for d in cursor.description]
    row = dict(zip(names, cursor.fetchone(), strict=True))
    cursor = conn.execute("select * from calls where request_id = ? order by seq", [request_id])
    names = [d[0] for d in cursor.description]
    row["calls"] = [dict(zip(names, c, strict=True)) for c in cursor.fetchall()]
    return row
