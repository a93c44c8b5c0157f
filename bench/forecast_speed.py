"""How long `cascade forecast` takes per user on a year of daily history for 100 users.

Builds a ledger in a temp dir (100 users x 365 days, several requests a day with one or
two model calls each, in the Europe/Berlin time zone, every user with a monthly budget),
then times, per user:

* the API end to end: ``daily_spend`` from the ledger, ``budget_period`` and
  ``CostForecaster.forecast`` (history, model fit, sample paths, risk), for all 100 users;
* the command end to end: ``cascade forecast --user U --json`` as a fresh process (Python
  start-up included), for ``--cli-users`` of them: wall time, and the process's CPU time
  (on a loaded machine the wall time is mostly waiting for a core; the load average is
  printed with the figures).

Target: <= 1 s per user.

    python bench/forecast_speed.py [--users 100] [--days 365] [--requests 8] [--cli-users 10]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

TIMEZONE = "Europe/Berlin"
LAST_DAY = date(2026, 11, 24)


def build_ledger(path: Path, users: int, days: int, per_day: int, seed: int = 1) -> int:
    """Write the requests and calls in bulk (one transaction); returns the request count."""
    from cascadeflow_cli.ledger.db import open_ledger
    from cascadeflow_cli.ledger.records import CallRecord, RequestRecord

    rng = np.random.default_rng(seed)
    first = LAST_DAY - timedelta(days=days - 1)
    count = 0
    with open_ledger(path) as ledger:
        from cascadeflow_cli.ledger import db as dbmod

        request_rows, call_rows = [], []
        for u in range(users):
            base = rng.uniform(0.001, 0.02)  # USD per request
            for d in range(days):
                day = first + timedelta(days=d)
                n = int(rng.poisson(per_day * (0.3 if day.weekday() >= 5 else 1.0)))
                for k in range(n):
                    moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
                        seconds=int(rng.integers(0, 86400)))
                    ts = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                    rid = f"u{u}-{d}-{k}"
                    cost = int(base * 1e9 * rng.lognormal(0, 0.5))
                    escalated = rng.random() < 0.3
                    calls = [CallRecord(id=f"{rid}-0", request_id=rid, ts=ts, seq=0, role="draft",
                                        model="mini", model_id="openai/gpt-4o-mini", provider="openai",
                                        status="ok", cost_nusd=cost // 5 if escalated else cost)]
                    if escalated:
                        calls.append(CallRecord(id=f"{rid}-1", request_id=rid, ts=ts, seq=1, role="verifier",
                                                model="big", model_id="openai/gpt-4o", provider="openai",
                                                status="ok", cost_nusd=cost - cost // 5))
                    record = RequestRecord(id=rid, ts=ts, user=f"user{u:03d}", status="ok", query=None,
                                           answer=None, model=calls[-1].model, cost_nusd=cost,
                                           calls=tuple(calls))
                    request_rows.append(dbmod._request_row(record))
                    call_rows.extend(dbmod._call_row(c) for c in calls)
                    count += 1
        with ledger.write() as db:
            db["requests"].insert_all(request_rows, batch_size=5000)
            db["calls"].insert_all(call_rows, batch_size=5000)
    return count


def time_api(db: Path, users: int) -> list[float]:
    from cascadeflow_cli.analytics.forecast import CostForecaster, budget_period
    from cascadeflow_cli.ledger.db import open_ledger
    from cascadeflow_cli.ledger.spend import daily_spend, to_usd

    as_of = LAST_DAY + timedelta(days=1)
    times = []
    with open_ledger(db) as ledger:
        for u in range(users):
            began = time.perf_counter()
            history = to_usd(daily_spend(ledger, user=f"user{u:03d}", timezone=TIMEZONE,
                                         end=as_of - timedelta(days=1)))
            prediction = CostForecaster().forecast(history, horizon=30, as_of=as_of,
                                                   budget=budget_period({"monthly": 50.0}, as_of))
            assert prediction.risk is not None
            times.append(time.perf_counter() - began)
    return times


def time_cli(tmp: Path, db: Path, users: int) -> tuple[list[float], list[float]]:
    config = tmp / "cascadeflow.toml"
    config.write_text(f'[ledger]\ntimezone = "{TIMEZONE}"\n[budgets.default]\nmonthly = 50.0\n',
                      encoding="utf-8")
    # bytecode caches as an installed package has them (this machine's environment sets
    # PYTHONDONTWRITEBYTECODE, which made every timed process compile our modules afresh)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(CASCADE_CONFIG=str(config), CASCADE_DB=str(db))
    as_of = (LAST_DAY + timedelta(days=1)).isoformat()
    command = [sys.executable, "-m", "cascadeflow_cli", "forecast", "--as-of", as_of, "--json"]
    subprocess.run([*command, "--user", "user000"], env=env, capture_output=True, check=False)  # untimed
    times, cpu = [], []
    for u in range(users):
        began, used = time.perf_counter(), _children_cpu()
        proc = subprocess.run([*command, "--user", f"user{u:03d}"], env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - began)
        cpu.append(_children_cpu() - used)
        if proc.returncode != 0:
            raise SystemExit(f"cascade forecast failed: {proc.stderr.strip()}")
    return times, cpu


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes: what a process costs
    whatever else the shared machine runs (its wall time under load is mostly waiting)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def summary(name: str, times: list[float]) -> str:
    return (f"{name:<34} n={len(times):<4} mean {statistics.mean(times):.3f}s  "
            f"median {statistics.median(times):.3f}s  max {max(times):.3f}s  "
            f"{'OK' if max(times) <= 1.0 else 'OVER'} (target <= 1 s per user)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--requests", type=int, default=8, help="mean requests per working day")
    parser.add_argument("--cli-users", type=int, default=10, help="users timed through the command")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        db = tmp / "ledger.db"
        began = time.perf_counter()
        count = build_ledger(db, args.users, args.days, args.requests)
        print(f"ledger: {args.users} users x {args.days} days, {count:,} requests, "
              f"{db.stat().st_size / 1e6:.0f} MB, built in {time.perf_counter() - began:.1f}s")
        print(summary("API (daily_spend + forecast)", time_api(db, args.users)))
        cli_times, cli_cpu = time_cli(tmp, db, min(args.cli_users, args.users))
        print(summary("cascade forecast --json (process)", cli_times))
        print(summary("  the same, CPU seconds (user+sys)", cli_cpu))
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
