"""`cascade batch`'s group commit on SQLite (ledger/batch_commit.py): the records of a
group go in by shared statements, a request already there is passed over, one that
cannot go in fails alone, and reservations made through the writer never overspend."""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from cascadeflow_cli.config import load_config
from cascadeflow_cli.errors import LedgerError
from cascadeflow_cli.ledger.batch_commit import BatchCommitLedger
from cascadeflow_cli.ledger.budgets import BudgetConfig, set_budget
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.ledger.enforcement import BudgetGate
from cascadeflow_cli.ledger.schema import RequestRecord
from tests.conftest import ledger_rows
from tests.ledger.test_db import request


def _record_all(store: BatchCommitLedger, db: Path, records: list[RequestRecord]) -> dict[str, Exception]:
    """Each record from a thread of its own while another connection holds the write
    lock, so that the writer finds them all waiting: one group (its first job aside)."""
    errors: dict[str, Exception] = {}
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")

    def record(r: RequestRecord) -> None:
        try:
            store.record(r)
        except LedgerError as exc:
            errors[r.id] = exc

    threads = [threading.Thread(target=record, args=(r,)) for r in records]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while store._jobs.qsize() < len(records) - 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    blocker.execute("COMMIT")
    blocker.close()
    for t in threads:
        t.join(30)
    return errors


def test_a_group_of_records_goes_in_whole_and_once(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    store = BatchCommitLedger(open_ledger(db))
    records = [replace(request(i, user=f"u{i % 3}"), external_id=f"b:{i}") for i in range(40)]
    store.ledger.record(records[5])  # recorded already (a journal replay came first)
    assert _record_all(store, db, records) == {}
    rows = ledger_rows(db, "requests")
    assert sorted(r["id"] for r in rows) == sorted(r.id for r in records)
    calls = ledger_rows(db, "calls")
    assert sorted(c["request_id"] for c in calls) == sorted(r.id for r in records)  # one each
    totals = {t["user"]: t["cost_nusd"] for t in ledger_rows(db, "spend_totals")}
    assert totals == {f"u{u}": sum(r.cost_nusd for r in records if r.user == f"u{u}") for u in range(3)}
    store.close()


def test_a_record_that_cannot_go_in_fails_alone(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    store = BatchCommitLedger(open_ledger(db))
    records = [replace(request(i), external_id=f"b:{i}") for i in range(12)]
    bad = replace(request(99), external_id="b:3")  # a second request for batch row 3
    errors = _record_all(store, db, [*records, bad])
    # the threads reach the writer's queue in any order under load: whichever of the two
    # rows for batch row 3 comes second is refused, alone; the other eleven go in with it
    assert len(errors) == 1, errors
    (refused,) = errors
    assert refused in (bad.id, records[3].id) and "UNIQUE" in str(errors[refused])
    kept = {r.id for r in [*records, bad]} - {refused}
    assert {r["id"] for r in ledger_rows(db, "requests")} == kept
    store.close()
    with pytest.raises(LedgerError):  # after close: the plain way, the same refusal
        store.record(replace(request(100), external_id="b:4"))


def test_reservations_and_records_through_the_writer_never_overspend(tmp_path: Path) -> None:
    config_path = tmp_path / "cascadeflow.toml"
    config_path.write_text('[budgets]\nmode = "block"\n', encoding="utf-8")
    db = tmp_path / "ledger.db"
    store = BatchCommitLedger(open_ledger(db))
    set_budget(store, "alice", BudgetConfig(total=Decimal("0.000010")))  # $0.000010: ten of $0.000001
    gate = BudgetGate(store, load_config(config_path))

    def run(n: int) -> int:
        """Five requests of $0.000001, each recorded when the budget let it run."""
        ran = 0
        for i in range(5):
            decision = gate.reserve("alice", f"r{n}-{i}", ["mini"], estimate=lambda _: 1000,
                                    degraded=lambda _: None, ttl_s=60)
            if decision.action != "block":
                record = replace(request(n * 10 + i), cost_nusd=1000)
                store.record(replace(record, calls=(replace(record.calls[0], cost_nusd=1000),)),
                             decision.reservation_id)
                ran += 1
        return ran

    with ThreadPoolExecutor(8) as pool:
        allowed = sum(pool.map(run, range(8)))
    assert allowed == 10  # spent, or reserved while in flight: never more than the budget
    assert sum(r["cost_nusd"] for r in ledger_rows(db, "requests")) == 10_000
    assert ledger_rows(db, "reservations") == []  # each settled by its record
    store.close()
