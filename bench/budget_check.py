"""Budget check + reservation + settlement with a million ledger rows for one user.

Builds a ledger with N requests for "alice" spread over the past year (bulk insert,
triggers on, as `cascade import` would), sets her budget, then times the real gate:
`BudgetGate.reserve` (check every window and reserve, one BEGIN IMMEDIATE transaction)
and `Ledger.record(..., reservation_id)` (store the request and settle, one more).
Prints medians and the query plans of the spend queries.

    python bench/budget_check.py [--rows 1000000] [--iterations 500]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from cascadeflow_cli.clock import format_ts
from cascadeflow_cli.config import parse_config
from cascadeflow_cli.ledger.budgets import BudgetConfig, set_budget
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.ledger.enforcement import BudgetGate
from cascadeflow_cli.ledger.records import RequestRecord
from cascadeflow_cli.windows import window


def build(path: Path, rows: int) -> None:
    now = datetime.now(UTC)
    rng = random.Random(7)
    with open_ledger(path) as ledger, ledger.write() as db:
        batch = []
        for i in range(rows):
            ts = now - timedelta(seconds=rng.uniform(0, 365 * 86400))
            batch.append((f"r{i}", format_ts(ts), "alice", "ok", rng.randint(1_000, 5_000_000)))
            if len(batch) == 50_000:
                db.conn.executemany(
                    "insert into requests (id, ts, user, status, cost_nusd) values (?,?,?,?,?)", batch
                )
                batch.clear()
        if batch:
            db.conn.executemany(
                "insert into requests (id, ts, user, status, cost_nusd) values (?,?,?,?,?)", batch
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--iterations", type=int, default=500)
    args = ap.parse_args()
    path = Path(tempfile.mkdtemp(prefix="budget-check-")) / "ledger.db"
    started = time.perf_counter()
    build(path, args.rows)
    print(f"built {args.rows:,} requests for alice in {time.perf_counter() - started:.1f} s")

    config = parse_config('[budgets]\nmode = "block"\n[ledger]\ntimezone = "Europe/Berlin"\n')
    ledger = open_ledger(path)
    set_budget(
        ledger,
        "alice",
        BudgetConfig(
            daily=Decimal("1e6"), weekly=Decimal("1e7"), monthly=Decimal("1e8"), total=Decimal("1e9")
        ),
    )
    gate = BudgetGate(ledger, config)
    reserve_ms, settle_ms = [], []
    for i in range(args.iterations):
        t0 = time.perf_counter()
        decision = gate.reserve(
            "alice", f"bench-{i}", ["mini"], estimate=lambda m: 10_000_000, degraded=lambda m: None, ttl_s=120
        )
        t1 = time.perf_counter()
        ts = format_ts(datetime.now(UTC))
        ledger.record(
            RequestRecord(
                id=f"bench-{i}",
                ts=ts,
                user="alice",
                status="ok",
                query=None,
                answer=None,
                cost_nusd=1_234_567,
            ),
            decision.reservation_id,
        )
        t2 = time.perf_counter()
        assert decision.action == "allow", decision
        reserve_ms.append((t1 - t0) * 1000)
        settle_ms.append((t2 - t1) * 1000)
    both = [a + b for a, b in zip(reserve_ms, settle_ms, strict=True)]
    print(f"{'step':<28}{'median ms':>10}{'p90 ms':>10}")
    for name, xs in (("check + reserve", reserve_ms), ("record + settle", settle_ms), ("total", both)):
        print(f"{name:<28}{statistics.median(xs):>10.3f}{statistics.quantiles(xs, n=10)[-1]:>10.3f}")
    win = window("monthly", datetime.now(UTC), "Europe/Berlin")
    for label, sql, params in (
        (
            "window spend",
            "select sum(cost_nusd) from spend_buckets where user = ? and bucket >= ? and bucket < ?",
            ["alice", format_ts(win.start)[:16], format_ts(win.end)[:16]],
        ),
        ("total spend", "select cost_nusd from spend_totals where user = ?", ["alice"]),
        ("in flight", "select sum(amount_nusd) from reservations where user = ?", ["alice"]),
    ):
        plan = [row[3] for row in ledger.db.execute(f"explain query plan {sql}", params).fetchall()]
        print(f"plan, {label}: {'; '.join(plan)}")
    median = statistics.median(both)
    print(f"verdict: {'OK' if median <= 2 else 'MISSED'} (median {median:.3f} ms; target <= 2 ms)")


if __name__ == "__main__":
    main()
