"""A key's requests-per-minute window kept by the database (ledger/storage.py RateWindows,
PostgreSQL: a real server, tests/pg_server.py): counted on the database's clock, one
statement a request, exact under concurrent requests from many connections."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from cascadeflow_cli.ledger.backend import open_store
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.ledger.storage import RateWindows


def test_a_window_admits_its_limit_then_says_how_long_to_wait(pg_ledger_url: str) -> None:
    store = open_store(pg_ledger_url)
    try:
        assert isinstance(store, RateWindows)
        assert store.admit_request("sk-cf-aaaaaaaa", 2, 60) is None
        assert store.admit_request("sk-cf-aaaaaaaa", 2, 60) is None
        wait = store.admit_request("sk-cf-aaaaaaaa", 2, 60)
        # the first start's bucket (a 60th of the window) leaves the window then
        assert wait is not None and 59 < wait <= 61
        assert store.admit_request("sk-cf-bbbbbbbb", 1, 60) is None  # each key its own window
        assert store.admit_request("sk-cf-aaaaaaaa", 3, 60) is None  # a raised limit counts at once
        # a short window: its starts leave it, and a refusal counted nothing meanwhile
        assert store.admit_request("sk-cf-cccccccc", 1, 0.3) is None
        assert store.admit_request("sk-cf-cccccccc", 1, 0.3) is not None
        time.sleep(0.35)
        assert store.admit_request("sk-cf-cccccccc", 1, 0.3) is None
    finally:
        store.close()


def test_concurrent_requests_on_many_connections_admit_exactly_the_limit(pg_ledger_url: str) -> None:
    stores = [open_store(pg_ledger_url) for _ in range(4)]  # four servers' connections
    answers: list[float | None] = []
    start = threading.Barrier(8)

    def hammer(store: RateWindows) -> None:
        start.wait()
        for _ in range(10):
            answers.append(store.admit_request("sk-cf-hot00000", 25, 60))

    threads = [threading.Thread(target=hammer, args=(s,)) for s in stores * 2]  # two threads each
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        for s in stores:
            s.close()
    assert len(answers) == 80 and answers.count(None) == 25


def test_a_sqlite_ledger_leaves_the_window_to_its_host(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path / "l.db")
    try:
        assert not isinstance(ledger, RateWindows)  # server/limits.py's file, one per key
    finally:
        ledger.close()
