"""`cascade batch`: a JSONL file of queries through the cascade, with the resume
protocol: the output file and the ledger together say which rows are done."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.usecases.requests import OnRecord, OnRetry, make_cascade

if TYPE_CHECKING:
    from cascadeflow_cli.config import AppConfig
    from cascadeflow_cli.engine.batch import BatchProgress, BatchRow
    from cascadeflow_cli.ledger.db import Ledger


@dataclass(frozen=True)
class BatchPlan:
    """Where a run starts: its batch id, the row keys the output already has, and the
    rows the ledger holds for this batch (key -> request id: answered before a crash,
    their result lines lost)."""

    batch_id: str
    done: set[str] = field(default_factory=set)
    committed: dict[str, str] = field(default_factory=dict)


def plan_batch(ledger: Ledger, file: Path, output: Path | None, resume: bool) -> BatchPlan:
    """A new batch, or (``resume`` with ``output``) the one that wrote it, with the
    output's torn last line, if a crash left one, cut off (an output that is gone: its
    rows all come from the ledger, not asked and paid for again)."""
    from cascadeflow_cli.engine.batch import scan_output
    from cascadeflow_cli.ledger.batch_ids import committed_queries, committed_rows, latest_batch, start_batch

    if not (resume and output is not None):
        return BatchPlan(start_batch(ledger, output, file.resolve()))
    done: set[str] = set()
    if output.exists():  # a lost output is resumed too: every row it had comes from the ledger
        done, good = scan_output(output)
        if good < output.stat().st_size:  # a line torn by a crash: cut it off
            with output.open("r+b") as fh:
                fh.truncate(good)
    batch_id = latest_batch(ledger, output)
    if batch_id is None:
        return BatchPlan(start_batch(ledger, output, file.resolve()), done)
    committed = committed_rows(ledger, batch_id)
    _check_same_rows(file, output, committed_queries(ledger, batch_id))
    return BatchPlan(batch_id, done, committed)


def _check_same_rows(file: Path, output: Path, queries: dict[str, str | None]) -> None:
    """An InputError when a row the earlier run answered now asks something else under its
    key: a line put in above rows without an "id" shifted every line number, and resuming
    skipped the new row, attached answers to the wrong rows and asked the last one again.
    (Rows are compared with the query the ledger stored; without stored prompts, not.)"""
    from cascadeflow_cli.engine.batch import BatchRow, read_rows
    from cascadeflow_cli.errors import InputError

    if not queries:
        return
    for row in read_rows(file):
        if not isinstance(row, BatchRow) or (stored := queries.get(row.key)) is None or stored == row.query:
            continue
        what = f"id {row.id!r}" if row.id_given else f"line {row.line} (no 'id': its line number is its key)"
        raise InputError(f"{file}: changed since the run that wrote {output}: {what} asks something else "
                         "than the row answered under that key; resuming would give it another row's "
                         "answer (give every row an 'id', restore the file, or write to a new output)")


def count_rows(file: Path) -> int:
    """The rows of ``file`` (non-blank lines), for the progress total."""
    from cascadeflow_cli.engine.batch import count_rows as count

    return count(file)


def run_batch(config: AppConfig, ledger: Ledger, file: Path, plan: BatchPlan, *,
              write: Callable[[dict[str, Any]], None], total: int, concurrency: int, default_user: str,
              on_retry: OnRetry, on_record: OnRecord | None = None,
              on_progress: Callable[[BatchProgress], None] | None = None,
              on_bad_row: Callable[[str], None] | None = None) -> BatchProgress:
    """Answer every row of ``file`` the plan does not have, ``concurrency`` at a time,
    each result through ``write`` as it finishes; rows the ledger holds are recovered
    from it instead of asked again."""
    from cascadeflow_cli.engine.batch import BatchRunner, read_rows, warm_up
    from cascadeflow_cli.ledger.batch_commit import BatchCommitLedger
    from cascadeflow_cli.ledger.batch_ids import external_id
    from cascadeflow_cli.ledger.db import Ledger

    warm_up()
    # a Cascade per worker thread, all on the one ledger and the one provider (which keeps
    # a connection per thread); on SQLite one writer thread commits the rows in groups
    # (ledger/batch_commit.py); `concurrency` workers call models at a time, the spare
    # ones reserve and record meanwhile
    store: Any = BatchCommitLedger(ledger) if isinstance(ledger, Ledger) else ledger
    runner = BatchRunner(
        lambda: make_cascade(config, store, on_retry=on_retry, on_record=on_record,
                             call_slots=runner.call_slots), write,
        concurrency=concurrency, default_user=default_user,
        external_id=lambda key: external_id(plan.batch_id, key),
        recover=_recoverer(ledger, plan.committed), on_progress=on_progress, on_bad_row=on_bad_row,
        spare_workers=max(1, concurrency // 2))
    try:
        return runner.run(read_rows(file), total, plan.done)
    finally:
        if store is not ledger:
            store.stop()  # what is queued is committed; later writes go the plain way


def _recoverer(ledger: Ledger, committed: dict[str, str]
               ) -> Callable[[BatchRow], dict[str, Any] | None]:
    """The result line of a row the ledger holds for this batch (from before a crash)."""
    from cascadeflow_cli.engine.views import result_from_row
    from cascadeflow_cli.ledger.batch_ids import load_request

    def recover(row: BatchRow) -> dict[str, Any] | None:
        request_id = committed.get(row.key)
        if request_id is None:
            return None
        stored = load_request(ledger, request_id)
        if stored["status"] != "ok":
            return {"id": row.id, "error": stored["error"] or stored["status"]}
        return {"id": row.id, **result_from_row(stored).to_json()}

    return recover
