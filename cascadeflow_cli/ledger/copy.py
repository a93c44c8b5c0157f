"""`cascade ledger copy FROM TO`: a whole ledger from one backend to another (SQLite to
PostgreSQL when a team moves in, and back), through the storage interface, so either side
may be either backend.

Requests (with their calls) go over in chunks, each chunk one transaction on the target;
a request already there (same id, or same batch row) is skipped, so a copy interrupted
half-way is finished by running it again. Budgets follow, as stored. What the export
holds comes out of the target exactly as it went in (a test compares the exports).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cascadeflow_cli.ledger.schema import RequestRecord
    from cascadeflow_cli.ledger.storage import LedgerStore

CHUNK = 5000  # requests per target transaction: big enough for speed, small enough to resume


@dataclass(frozen=True)
class CopyReport:
    requests_read: int
    requests: int  # copied (the rest were there already)
    calls: int
    budgets: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        rows = self.requests + self.calls
        return rows / self.seconds if self.seconds > 0 else float("inf")


def _chunks(records: Iterator[RequestRecord], size: int) -> Iterator[list[RequestRecord]]:
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
    budgets = source.list_budgets()
    for user, budget in budgets:
        if not budget.is_empty:
            target.set_budget(user, budget)
    return CopyReport(read, copied, calls, len(budgets), time.perf_counter() - started)
