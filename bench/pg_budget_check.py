"""Check + reserve + settle with a million ledger rows for one user, on PostgreSQL (and,
with --compare-sqlite, on SQLite in the same run), through the storage interface only.

Builds the ledger with N requests for "alice" spread over the past year via
``record_many`` (as `cascade import` does: spend triggers on), then times the real gate:
``BudgetGate.reserve`` (every window checked and a reservation made in one transaction
under the user's lock) and ``record(..., reservation_id)`` (store + settle, one more).
Also times `cascade ledger copy`'s engine (rows per second) from the built ledger into a
fresh one of the other backend.

    python bench/pg_budget_check.py [--db postgresql://...|postgresql] [--rows 1000000]
                                    [--iterations 500] [--compare-sqlite] [--copy] [--no-fsync]

``--db postgresql`` starts a throwaway local cluster that commits durably (fsync and
synchronous_commit on, PostgreSQL's defaults): each reservation and settlement waits for
its WAL flush, as on a real server. ``--no-fsync`` turns that off, to diagnose.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.pg_server, from a checkout

from cascadeflow_cli.clock import format_ts
from cascadeflow_cli.config import parse_config
from cascadeflow_cli.ledger.backend import open_store
from cascadeflow_cli.ledger.budgets import BudgetConfig
from cascadeflow_cli.ledger.copy import copy_ledger
from cascadeflow_cli.ledger.enforcement import BudgetGate
from cascadeflow_cli.ledger.schema import CallRecord, RequestRecord


def records(rows: int) -> list[RequestRecord]:
    now = datetime.now(UTC)
    rng = random.Random(7)
    out = []
    for i in range(rows):
        ts = format_ts(now - timedelta(seconds=rng.uniform(60, 365 * 86400)))
        cost = rng.randint(1_000, 5_000_000)
        call = CallRecord(id=f"c{i}", request_id=f"r{i}", ts=ts, seq=0, role="draft", model="mini",
                          model_id="m", provider="openai", status="ok", cost_nusd=cost)
        out.append(RequestRecord(id=f"r{i}", ts=ts, user="alice", status="ok", query=None, answer=None,
                                 cost_nusd=cost, calls=(call,)))
    return out


def server_cpu_s(ledger: object) -> float:
    """CPU seconds the server process behind this thread's connection has used (PostgreSQL
    on this machine; 0 for SQLite). Load-independent, unlike the wall-clock medians."""
    pid_of = getattr(ledger, "_value", None)
    if pid_of is None:
        return 0.0
    pid = pid_of("select pg_backend_pid()")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(db: str, rows: list[RequestRecord], iterations: int
            ) -> tuple[float, list[float], list[float], tuple[float, float]]:
    with open_store(db) as ledger:
        started = time.perf_counter()
        for at in range(0, len(rows), 50_000):
            ledger.record_many(rows[at:at + 50_000])
        built = time.perf_counter() - started
        ledger.set_budget("alice", BudgetConfig(daily=Decimal("1e6"), weekly=Decimal("1e7"),
                                                monthly=Decimal("1e8"), total=Decimal("1e9")))
        config = parse_config('[budgets]\nmode = "block"\n[ledger]\ntimezone = "Europe/Berlin"\n'
                              '[budgets.teams.crew]\nmembers = ["alice", "bob"]\nmonthly = 1e8\n')
        gate = BudgetGate(ledger, config)
        reserve_ms, settle_ms = [], []
        cpu0, server0 = time.process_time(), server_cpu_s(ledger)
        for i in range(iterations):
            t0 = time.perf_counter()
            decision = gate.reserve("alice", f"bench-{i}", ["mini"], estimate=lambda m: 10_000_000,
                                    degraded=lambda m: None, ttl_s=120)
            t1 = time.perf_counter()
            ledger.record(RequestRecord(id=f"bench-{i}", ts=format_ts(ledger.clock.now()), user="alice",
                                        status="ok", query=None, answer=None, cost_nusd=1_234_567),
                          decision.reservation_id)
            t2 = time.perf_counter()
            assert decision.action == "allow", decision
            reserve_ms.append((t1 - t0) * 1000)
            settle_ms.append((t2 - t1) * 1000)
        cpu = ((time.process_time() - cpu0) * 1000 / iterations,
               (server_cpu_s(ledger) - server0) * 1000 / iterations)
        assert ledger.reserved_spend("alice") == 0
    return built, reserve_ms, settle_ms, cpu


def show(name: str, rows: int, built: float, reserve_ms: list[float], settle_ms: list[float],
         cpu: tuple[float, float]) -> float:
    both = [a + b for a, b in zip(reserve_ms, settle_ms, strict=True)]
    print(f"--- {name}: {rows:,} requests for alice built in {built:.1f} s ({2 * rows / built:,.0f} rows/s)")
    print(f"{'step':<28}{'median ms':>10}{'p90 ms':>10}")
    for label, xs in (("check + reserve", reserve_ms), ("record + settle", settle_ms), ("total", both)):
        print(f"{label:<28}{statistics.median(xs):>10.3f}{statistics.quantiles(xs, n=10)[-1]:>10.3f}")
    print(f"CPU per check+reserve+settle: {cpu[0]:.3f} ms here + {cpu[1]:.3f} ms in the server process "
          "(load-independent)")
    return statistics.median(both)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="postgresql")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--compare-sqlite", action="store_true")
    ap.add_argument("--copy", action="store_true", help="also time `ledger copy` both ways")
    ap.add_argument("--copy-only", action="store_true", help="only build the PostgreSQL ledger and copy it")
    ap.add_argument("--no-fsync", action="store_true",
                    help="diagnosis only: the throwaway cluster without fsync/synchronous_commit "
                         "(by default it commits durably, as a real local server does)")
    args = ap.parse_args()
    pg = None
    db = args.db
    if db == "postgresql":
        from tests import pg_server

        pg = pg_server.start(durable=not args.no_fsync)
        db = pg.url(pg.create_database("check"))
    elif db.startswith("postgresql"):  # a server of your own: a fresh database on it, every run
        import uuid

        import psycopg

        name = f"check_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(f'create database "{name}"')
        head, _, tail = db.partition("?")
        db = head.rsplit("/", 1)[0] + f"/{name}" + (f"?{tail}" if tail else "")
    try:
        print(f"load average before: {os.getloadavg()[0]:.2f}")
        if db.startswith("postgresql"):
            import psycopg

            with psycopg.connect(db) as conn:
                settings = [f"{name}={conn.execute(f'show {name}').fetchone()[0]}"  # type: ignore[index]
                            for name in ("fsync", "synchronous_commit", "wal_sync_method")]
            print(f"server: {' '.join(settings)}")
        rows = records(args.rows)
        median = float("nan")
        if args.copy_only:
            with open_store(db) as ledger:
                for at in range(0, len(rows), 50_000):
                    ledger.record_many(rows[at:at + 50_000])
        else:
            median = show("PostgreSQL", args.rows, *measure(db, rows, args.iterations))
        lite = str(Path(tempfile.mkdtemp(prefix="budget-check-")) / "ledger.db")
        if args.compare_sqlite and not args.copy_only:
            show("SQLite (same run)", args.rows, *measure(lite, rows, args.iterations))
        if args.copy or args.copy_only:
            targets = [("PostgreSQL -> SQLite", db, str(Path(tempfile.mkdtemp()) / "copy.db"))]
            if pg is not None:
                targets.append(("SQLite -> PostgreSQL", targets[0][2], pg.url(pg.create_database("copy"))))
            for label, source, target in targets:
                with open_store(source) as src, open_store(target) as dst:
                    report = copy_ledger(src, dst)
                print(f"ledger copy {label}: {report.requests:,} requests + {report.calls:,} calls in "
                      f"{report.seconds:.1f} s = {report.rows_per_second:,.0f} rows/s")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        if not args.copy_only:
            verdict = "OK" if median <= 3 else "MISSED"
            print(f"verdict: {verdict} (PostgreSQL median {median:.3f} ms; target <= 3 ms)")
    finally:
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
