"""Batch rows in the ledger: which run of `cascade batch` made a request, for which input row.

A batch run has an id, kept in the ``batches`` table with the output file it writes. Every
request the run makes carries ``external_id = "<batch id>:<row key>"``, under a unique
index, so one run can never record the same input row twice. ``--resume`` finds the run
that last wrote the output file and asks the ledger which rows already committed: a row
whose transaction committed just before a crash (its output line never written) is then
copied from the ledger instead of being asked, and paid for, a second time.

Functions here take any LedgerStore (ledger/storage.py); the SQLite backend's SQL for them
is in ledger/sqlite_store.py, the tables in ledger/schema.py (migration 003).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cascadeflow_cli.ledger.storage import LedgerStore

SEPARATOR = ":"


def external_id(batch_id: str, row_key: str) -> str:
    return f"{batch_id}{SEPARATOR}{row_key}"


def start_batch(ledger: LedgerStore, output: Path | None, input_path: Path) -> str:
    """Register a new batch run writing ``output`` (None: stdout) and return its id."""
    return ledger.start_batch(output, input_path)


def latest_batch(ledger: LedgerStore, output: Path) -> str | None:
    """The id of the newest run that wrote ``output``, if this ledger knows one."""
    return ledger.latest_batch(output)


def committed_rows(ledger: LedgerStore, batch_id: str) -> dict[str, str]:
    """``row key -> request id`` for every request of run ``batch_id`` in the ledger,
    whatever its status: each one settles its row (and the unique index would refuse a
    second request for it anyway)."""
    return ledger.committed_rows(batch_id)


def committed_queries(ledger: LedgerStore, batch_id: str) -> dict[str, str | None]:
    """``row key -> query`` of those requests (None where prompts were not stored): one
    read, where a ``load_request`` per row made resuming 10,000 rows take 1.6 s, not 0.1 s."""
    return ledger.committed_queries(batch_id)


def load_request(ledger: LedgerStore, request_id: str) -> dict[str, Any]:
    """One request row with its calls (in call order), shaped like ``recent_requests``."""
    return ledger.load_request(request_id)
