"""The group-commit writer `cascade serve` puts in front of a SQLite ledger
(ledger/group_commit.py): many threads' reservations in shared transactions never
overspend a budget, and one job that fails leaves the rest of its batch committed."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from cascadeflow_cli.config import load_config
from cascadeflow_cli.errors import LedgerError
from cascadeflow_cli.ledger import group_commit
from cascadeflow_cli.ledger.budgets import BudgetConfig, set_budget
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.ledger.enforcement import BudgetGate, locked
from cascadeflow_cli.ledger.group_commit import GroupCommitLedger
from cascadeflow_cli.ledger.storage import Hold


def test_threads_reserving_through_the_writer_never_overspend(tmp_path: Path) -> None:
    config_path = tmp_path / "cascadeflow.toml"
    config_path.write_text('[budgets]\nmode = "block"\n', encoding="utf-8")
    store = GroupCommitLedger(open_ledger(tmp_path / "ledger.db"))
    set_budget(store, "alice", BudgetConfig(total=Decimal("0.000010")))  # ten reservations of $0.000001
    gate = BudgetGate(store, load_config(config_path))
    actions: list[str] = []

    def reserve(n: int) -> None:
        for i in range(5):
            decision = gate.reserve("alice", f"r{n}-{i}", ["mini"], estimate=lambda _: 1000,
                                    degraded=lambda _: None, ttl_s=60)
            actions.append(decision.action)

    threads = [threading.Thread(target=reserve, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert actions.count("block") == 30 and len(actions) == 40  # exactly ten allowed of forty
    assert store.reserved_spend("alice") == 10_000
    store.close()


def test_a_failing_job_rolls_back_alone(tmp_path: Path) -> None:
    store = GroupCommitLedger(open_ledger(tmp_path / "ledger.db"))
    hold = Hold("h1", "bob", "q1", 5, "2026-01-01T00:00:00.000000Z", "2999-01-01T00:00:00.000000Z", 1, "h")

    def reserve_then_fail(txn: object) -> None:
        txn.reserve(hold)  # type: ignore[attr-defined]
        raise RuntimeError("the decision failed after writing")

    with pytest.raises(RuntimeError):
        locked(store, "bob", [], reserve_then_fail)
    assert store.reserved_spend("bob") == 0  # its write was rolled back to its savepoint
    locked(store, "bob", [], lambda txn: txn.reserve(hold))  # type: ignore[attr-defined]
    assert store.reserved_spend("bob") == 5
    store.release("h1")
    assert store.reserved_spend("bob") == 0
    store.close()
    store.release("h1")  # after close: written the plain way, no writer thread needed


def _hold(rid: str) -> Hold:
    return Hold(rid, "bob", f"q-{rid}", 5, "2026-01-01T00:00:00.000000Z", "2999-01-01T00:00:00.000000Z",
                1, "h")


def test_the_writer_waits_for_another_connections_write_lock_then_commits(tmp_path: Path) -> None:
    # another process's writer (here: another connection) holds the lock; the batch must
    # wait for it (polling, not SQLite's sleeping busy handler) and then commit, not fail
    store = GroupCommitLedger(open_ledger(tmp_path / "ledger.db"))
    locked(store, "bob", [], lambda txn: txn.reserve(_hold("h0")))  # type: ignore[attr-defined]
    other = sqlite3.connect(str(tmp_path / "ledger.db"))
    other.execute("BEGIN IMMEDIATE")
    waiting = threading.Thread(
        target=locked, args=(store, "bob", [], lambda txn: txn.reserve(_hold("h1")))  # type: ignore[attr-defined]
    )
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive()  # still waiting for the lock
    other.execute("insert into reservations (id, user, request_id, amount_nusd, created_at, expires_at) "
                  "values ('h2', 'bob', 'q-h2', 7, '2026-01-01T00:00:00Z', '2999-01-01T00:00:00Z')")
    other.execute("COMMIT")
    waiting.join(30)
    assert not waiting.is_alive() and store.reserved_spend("bob") == 17  # h0, h2 and h1
    other.close()
    store.close()


def test_a_write_lock_held_past_the_busy_timeout_is_a_ledger_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_commit, "BUSY_TIMEOUT_S", 0.2)
    store = GroupCommitLedger(open_ledger(tmp_path / "ledger.db"))
    locked(store, "bob", [], lambda txn: txn.reserve(_hold("h0")))  # type: ignore[attr-defined]
    other = sqlite3.connect(str(tmp_path / "ledger.db"))
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(LedgerError, match="locked"):
        locked(store, "bob", [], lambda txn: txn.reserve(_hold("h1")))  # type: ignore[attr-defined]
    other.execute("ROLLBACK")
    other.close()
    assert store.reserved_spend("bob") == 5
    store.close()


def _loop_store(tmp_path: Path) -> tuple[GroupCommitLedger, BudgetGate]:
    from cascadeflow_cli.server import bridge

    config_path = tmp_path / "cascadeflow.toml"
    config_path.write_text('[budgets]\nmode = "block"\n', encoding="utf-8")
    store = GroupCommitLedger(open_ledger(tmp_path / "ledger.db"), bridge.LoopAwaiter())
    set_budget(store, "alice", BudgetConfig(total=Decimal("1")))
    return store, BudgetGate(store, load_config(config_path))


def _reserve(gate: BudgetGate, rid: str) -> str:
    return gate.reserve(
        "alice", rid, ["mini"], estimate=lambda _: 1000, degraded=lambda _: None, ttl_s=60
    ).action


def test_tasks_jobs_are_committed_on_the_loop_together_when_the_lock_is_free(tmp_path: Path) -> None:
    # each job was a hop to the writer thread and back: two wake-ups on the request's
    # path, each a wait for a CPU on a loaded machine
    from cascadeflow_cli.server import bridge

    store, gate = _loop_store(tmp_path)

    async def main() -> list[str]:
        return list(await asyncio.gather(*(bridge.run(_reserve, gate, f"r{n}") for n in range(20))))

    assert asyncio.run(main()) == ["allow"] * 20
    assert store.reserved_spend("alice") == 20_000
    assert store._thread is None  # no writer thread was needed
    assert store._here_commits == 1  # the twenty tasks' reservations: one transaction
    store.close()


def test_a_write_lock_held_elsewhere_is_waited_for_off_the_loop(tmp_path: Path) -> None:
    from cascadeflow_cli.server import bridge

    store, gate = _loop_store(tmp_path)
    other = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
    ticks: list[float] = []

    async def ticker() -> None:
        while len(ticks) < 20:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def main() -> str:
        beat = asyncio.create_task(ticker())
        reserving = asyncio.ensure_future(bridge.run(_reserve, gate, "r1"))
        await asyncio.sleep(0.3)
        assert not reserving.done()  # it waits for the lock...
        assert len(ticks) >= 3  # ...while the loop goes on serving (blocked, it stood still)
        other.execute("ROLLBACK")
        action = await asyncio.wait_for(reserving, 10)
        await beat
        return action

    assert asyncio.run(main()) == "allow"
    assert store.reserved_spend("alice") == 1000
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 1.0  # never blocked for the lock
    store.close()
    other.close()


def _reserve_many(store: GroupCommitLedger, gate: BudgetGate, tasks: int, each: int) -> list[int]:
    """``tasks`` tasks on one loop, each reserving ``each`` times with a pause of 1 ms
    between (its provider call); the WAL's size after each reservation."""
    from cascadeflow_cli.server import bridge

    wal = store.ledger.path.with_name(store.ledger.path.name + "-wal")
    sizes: list[int] = []

    def some(n: int) -> None:
        for i in range(each):
            _reserve(gate, f"r{n}-{i}")
            sizes.append(wal.stat().st_size)
            bridge.await_only(asyncio.sleep(0.001))

    async def main() -> None:
        await asyncio.gather(*(bridge.run(some, n) for n in range(tasks)))

    asyncio.run(main())
    return sizes


def _checkpointing_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **settings: object) -> tuple:
    """A loop store whose writer thread checkpoints every 5 commits (and ``settings``)."""
    monkeypatch.setattr(group_commit, "CHECKPOINT_EVERY", 5)
    for name, value in settings.items():
        monkeypatch.setattr(group_commit, name, value)
    return _loop_store(tmp_path)


def test_checkpoints_leave_the_loops_writes_on_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a TRUNCATE checkpoint held the write lock for its fsyncs, so the batches the loop
    # committed meanwhile fell to the writer thread (~5% of them, 50 clients); a passive
    # one never takes that lock
    store, gate = _checkpointing_store(tmp_path, monkeypatch)
    writer_changes = sum(db.conn.total_changes for db in store.ledger._connections)
    _reserve_many(store, gate, 10, 30)
    loop_db = store._here_local.db
    others = [db for db in store.ledger._connections if db is not loop_db]
    assert sum(db.conn.total_changes for db in others) == writer_changes  # all on the loop
    assert store._here_commits >= 20  # so the writer thread checkpointed at least four times
    assert store.reserved_spend("alice") == 300_000
    store.close()


def test_a_wal_past_its_limit_is_started_over_under_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # passive checkpoints alone never empty a WAL the loop keeps appending to: without
    # the restart at the limit, 300 commits made a WAL of ~4 MB
    store, gate = _checkpointing_store(tmp_path, monkeypatch, WAL_LIMIT_BYTES=200_000)
    sizes = _reserve_many(store, gate, 1, 300)
    assert max(sizes) < 1_000_000, max(sizes)
    assert store.reserved_spend("alice") == 300_000
    store.close()


def test_an_idle_loop_leaves_an_empty_wal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the commits after the last checkpoint are copied back once the loop stops writing
    store, gate = _checkpointing_store(tmp_path, monkeypatch, IDLE_S=0.05)
    _reserve_many(store, gate, 1, 302)
    wal = tmp_path / "ledger.db-wal"
    deadline = time.monotonic() + 10
    while wal.stat().st_size and time.monotonic() < deadline:
        time.sleep(0.02)
    assert wal.stat().st_size == 0
    assert store.reserved_spend("alice") == 302_000
    store.close()


def test_a_reader_holding_the_wal_holds_up_the_loops_writes_rarely(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a restart waits for the WAL's readers, and the loop's writes wait with it: while a
    # long reader (`cascade export` in another process) holds the WAL, each try costs
    # them CHECKPOINT_WAIT_MS, so a failed try is not made again before the WAL has
    # grown by another limit's worth (retried after every passive checkpoint, 300
    # reservations waited 100 ms some 40 times)
    from cascadeflow_cli.server import bridge

    store, gate = _checkpointing_store(tmp_path, monkeypatch, WAL_LIMIT_BYTES=1_000_000)
    reader = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("select count(*) from reservations").fetchone()  # it holds its snapshot
    waits: list[float] = []

    def some() -> None:
        for i in range(300):
            t0 = time.perf_counter()
            _reserve(gate, f"r{i}")
            waits.append(time.perf_counter() - t0)
            bridge.await_only(asyncio.sleep(0.001))

    async def main() -> None:
        await bridge.run(some)

    asyncio.run(main())
    reader.execute("ROLLBACK")
    reader.close()
    held = [w for w in waits if w >= group_commit.CHECKPOINT_WAIT_MS / 1000 * 0.9]
    assert len(held) <= 8, len(held)  # ~4 MB of WAL: three or four tries
    assert store.reserved_spend("alice") == 300_000
    store.close()
