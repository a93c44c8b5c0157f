"""`cascade ledger copy FROM TO`: a whole ledger from one backend to another (SQLite to
PostgreSQL when a team moves in, and back), through the storage interface, so either side
may be either backend.

Requests (with their calls) go over in chunks, each chunk one transaction on the target;
a request already there (same id, or same batch row) is skipped, so a copy interrupted
half-way is finished by running it again. Then the tables that hang off requests, row
for row (TABLES: batch runs, so `batch --resume` resumes on the target; quality labels
and the live signals of draft calls, so calibration has the same data; API keys and
which requests each made, so `serve` on the target takes the same keys with the same
spend), and budgets, as
stored. Everything comes out of the target exactly as it went in (tests compare the
exports and every copied table, both ways).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.ledger import schema

if TYPE_CHECKING:
    from cascadeflow_cli.ledger.storage import LedgerStore

CHUNK = 5000  # requests per target transaction: big enough for speed, small enough to resume
# copied row for row after the requests (those of requests the target skipped are skipped)
# API keys with the requests each made: without them every key was a 401 on the target,
# and a key made again there started its own budget from nothing (a key already on the
# target is kept as it is there, except that a revocation on the source reaches it:
# _carry_revocations)
TABLES = (schema.BATCHES, schema.QUALITY_LABELS, schema.CALL_SIGNALS, schema.API_KEYS,
          schema.API_KEY_REQUESTS)


@dataclass(frozen=True)
class CopyReport:
    requests_read: int
    requests: int  # copied (the rest were there already)
    calls: int
    budgets: int
    seconds: float
    tables: dict[str, int] = field(default_factory=dict)  # rows copied per table of TABLES
    revoked: int = 0  # keys already on the target that the source has revoked since

    @property
    def rows_per_second(self) -> float:
        rows = self.requests + self.calls + sum(self.tables.values())
        return rows / self.seconds if self.seconds > 0 else float("inf")


def _chunks(records: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while chunk := list(islice(records, size)):
        yield chunk


def copy_ledger(source: LedgerStore, target: LedgerStore,
                on_progress: Callable[[int], None] | None = None) -> CopyReport:
    started = time.perf_counter()
    read = copied = calls = 0
    for chunk in _chunks(source.iter_records(), CHUNK):
        counts = target.record_many(chunk)
        read += len(chunk)
        copied += counts.requests
        calls += counts.calls
        if on_progress is not None:
            on_progress(read)
    tables = {t.name: sum(target.add_rows(t, rows) for rows in _chunks(source.table_rows(t), CHUNK))
              for t in TABLES}
    revoked = _carry_revocations(source, target)
    budgets = source.list_budgets()
    for user, budget in budgets:
        if not budget.is_empty:
            target.set_budget(user, budget)
    return CopyReport(read, copied, calls, len(budgets), time.perf_counter() - started, tables, revoked)


def _carry_revocations(source: LedgerStore, target: LedgerStore) -> int:
    """Revoke on ``target`` each key the source has revoked since an earlier copy (a key
    already there was kept as it was, so a key revoked on the source still opened `serve`
    on the target), with the source's time. Monotone: a key revoked on the target stays
    revoked, and one of another hash under the same prefix is not touched."""
    there = {row["prefix"]: row for row in target.table_rows(schema.API_KEYS)}
    revoked = 0
    for row in source.table_rows(schema.API_KEYS):
        mine = there.get(row["prefix"])
        if (row["revoked_at"] is not None and mine is not None and mine["revoked_at"] is None
                and mine["key_hash"] == row["key_hash"]):
            target.revoke_api_key(row["prefix"], row["revoked_at"])  # type: ignore[attr-defined]
            revoked += 1
    return revoked
