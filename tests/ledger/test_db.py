from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from cascadeflow_cli.errors import LedgerError, LedgerSchemaError
from cascadeflow_cli.ledger.db import MIGRATIONS, open_ledger
from cascadeflow_cli.ledger.records import CallRecord, RequestRecord


def request(i: int, user: str = "alice") -> RequestRecord:
    rid = f"r{os.getpid()}-{i}"
    call = CallRecord(
        id=f"{rid}-0",
        request_id=rid,
        ts="2026-11-25T10:00:00.000000Z",
        seq=0,
        role="draft",
        model="mini",
        model_id="openai/gpt-4o-mini",
        provider="openai",
        status="ok",
        input_tokens=10,
        output_tokens=5,
        cost_nusd=123,
    )
    return RequestRecord(
        id=rid,
        ts="2026-11-25T10:00:00.000000Z",
        user=user,
        status="ok",
        query="q",
        answer="a",
        cost_nusd=123,
        calls=(call,),
    )


def test_new_ledger_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ledger.db"
    open_ledger(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_migrations_run_once(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    open_ledger(path).close()
    with open_ledger(path) as ledger:
        rows = list(ledger.db["_migrations"].rows)
    assert [r["name"] for r in rows] == [name for name, _ in MIGRATIONS]
    conn = sqlite3.connect(path)
    assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_record_and_read_back(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "l.db") as ledger:
        ledger.record(request(1))
        ledger.record(request(2, user="bob"))
        rows = ledger.recent_requests(10)
        assert [r["user"] for r in rows] == ["bob", "alice"]
        assert rows[0]["calls"][0]["cost_nusd"] == 123
        assert [r["user"] for r in ledger.recent_requests(10, user="alice")] == ["alice"]


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "l.db") as ledger:
        ledger.record(request(1))
        ledger.record(request(1))  # same id: recorded already (a journal replay), idempotent
        bad = request(2)
        bad_call = CallRecord(**{**bad.calls[0].__dict__, "request_id": "missing"})
        with pytest.raises(LedgerError):  # the call violates its foreign key after the request went in
            ledger.record(RequestRecord(**{**bad.__dict__, "calls": (bad_call,)}))
        assert ledger.db["requests"].count == 1
        assert ledger.db["calls"].count == 1


def test_interrupt_inside_a_write_rolls_back(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "l.db") as ledger:
        with pytest.raises(KeyboardInterrupt), ledger.write() as db:
            db["requests"].insert({"id": "x", "ts": "t", "user": "u", "status": "ok", "cost_nusd": 1})
            raise KeyboardInterrupt
        assert ledger.db["requests"].count == 0
        ledger.record(request(3))  # and the connection is still usable
        assert ledger.db["requests"].count == 1


@pytest.mark.parametrize("make", ["directory", "unwritable_parent"])
def test_unusable_paths_give_one_clear_error(tmp_path: Path, make: str) -> None:
    if make == "directory":
        path = tmp_path / "adir"
        path.mkdir()
    else:
        path = Path("/proc/cascadeflow-cannot-exist/ledger.db")
    with pytest.raises(LedgerError) as info:
        open_ledger(path)
    assert str(path) in str(info.value)


def test_not_a_database_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LedgerError, match="cannot open ledger"):
        open_ledger(path)


def _writer(path: str, n: int) -> None:
    with open_ledger(Path(path)) as ledger:
        for i in range(n):
            ledger.record(request(i))


def test_concurrent_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    open_ledger(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), 50)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    conn = sqlite3.connect(path)
    assert conn.execute("select count(*) from requests").fetchone()[0] == 200
    assert conn.execute("select count(*) from calls").fetchone()[0] == 200
    assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"


def test_one_ledger_shared_by_threads_reading_and_writing(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from cascadeflow_cli.config import default_config
    from cascadeflow_cli.ledger.budgets import effective_budget

    with open_ledger(tmp_path / "l.db") as ledger:

        def work(i: int) -> None:
            for j in range(25):
                ledger.record(request(i * 100 + j))
                effective_budget(ledger, default_config(), "alice")
                ledger.recent_requests(5)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(work, range(8)))
        assert ledger.db["requests"].count == 200
        assert ledger.db.execute("pragma integrity_check").fetchone()[0] == "ok"


def test_the_wal_switch_waits_out_a_lock_that_skips_the_busy_handler(tmp_path: Path) -> None:
    """Two processes opening a fresh ledger together: SQLite can refuse the WAL switch at
    once ("database is locked") instead of waiting. Here a connection with no busy
    handler at all meets a reader that lets go after 0.2 s: the switch is retried."""
    import threading
    import time

    from cascadeflow_cli.ledger.db import _use_wal

    path = tmp_path / "fresh.db"
    reader = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    reader.execute("create table t (x)")
    reader.execute("begin")
    reader.execute("select * from t").fetchall()  # a shared lock, held
    threading.Timer(0.2, lambda: reader.execute("commit")).start()
    switcher = sqlite3.connect(path, timeout=0)  # fails at once when locked
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        switcher.execute("PRAGMA journal_mode=WAL")  # what it meets without the retry
    start = time.monotonic()
    _use_wal(switcher)
    assert switcher.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert time.monotonic() - start < 5
    reader.close()
    switcher.close()


# What each released migration runs on SQLite, pinned: a released migration never changes
# (ledgers in the field ran it), whatever the DDL generator shared with PostgreSQL becomes.
RELEASED_DDL = {
    "001_initial": "d3136a988fbcdafe", "002_budgets": "9ec54ca7fd93ab82",
    "003_batch_external_ids": "4d1b257720a64ba2", "004_call_details": "e197280d75554856",
    "005_quality_labels": "62c7d9466a47d0ea", "006_api_keys": "dd9f8bfdf34b9eab",
}


def test_released_migrations_render_the_same_sqlite_ddl() -> None:
    import hashlib

    from cascadeflow_cli.ledger import schema_ddl

    for name, digest in RELEASED_DDL.items():
        text = "\n".join(schema_ddl.migration_ddl(name))
        assert hashlib.sha256(text.encode()).hexdigest()[:16] == digest, name


def test_a_ledger_from_a_newer_cascade_is_refused_untouched(tmp_path: Path) -> None:
    """hostile-4: a SQLite ledger whose _migrations holds a name this version does not know
    was read and written as if it were ours (PostgreSQL already refused it)."""
    db = tmp_path / "l.db"
    open_ledger(db).close()
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("insert into _migrations (id, name, applied_at) values (99, '099_future', 't')")
    conn.close()
    before = db.read_bytes()
    with pytest.raises(LedgerSchemaError, match=r"newer than this cascade.*099_future"):
        open_ledger(db)
    assert db.read_bytes() == before
