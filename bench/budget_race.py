"""Budget race: 8 processes x 50 `cascade ask` against one user's daily budget.

A local replay server answers every request after 50 ms with the same answer, so each
request costs the same known amount; the budget is worth about 100 of them. Reports the
spend recorded against the budget (overspend must be $0.00), successful and blocked
requests against what the budget allows, and wall time.

    python bench/budget_race.py [--procs 8] [--per-proc 50] [--requests-worth 100]
"""

from __future__ import annotations

import argparse
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

from cascadeflow_cli.replay.server import spawn

ANSWER = (
    "Paris is the capital of France. It has been the seat of the French government for "
    "centuries and is the country's largest city."
)
QUERY = "What is the capital of France?"
IN_PRICE, OUT_PRICE = Decimal("0.15"), Decimal("0.60")  # USD per million tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--procs", type=int, default=8)
    ap.add_argument("--per-proc", type=int, default=50)
    ap.add_argument("--requests-worth", type=int, default=100)
    ap.add_argument("--latency", type=float, default=0.05)
    args = ap.parse_args()

    server, url = spawn("--latency", str(args.latency))
    work = Path(tempfile.mkdtemp(prefix="budget-race-"))
    # the server counts ceil(chars/4) tokens; max_tokens just above the answer keeps the
    # worst case (what is reserved) close to the real cost
    answer_tokens = math.ceil(len(ANSWER) / 4)
    config = work / "cascadeflow.toml"
    config.write_text(f"""
[[models]]
name = "mini"
model = "openai/replay-mini"
api_base = "{url}"
input_cost_per_million = {IN_PRICE}
output_cost_per_million = {OUT_PRICE}

[cascade]
models = ["mini"]
max_tokens = {answer_tokens + 4}

[budgets]
mode = "block"
""")
    env = {**os.environ, "CASCADE_CONFIG": str(config), "CASCADE_DB": str(work / "ledger.db")}
    cascade = [sys.executable, "-m", "cascadeflow_cli"]
    try:
        # one request to learn the exact cost of a request, then set the budget from it
        subprocess.run(
            [*cascade, "ask", QUERY, "--user", "probe", "--json"], env=env, check=True, capture_output=True
        )
        conn = sqlite3.connect(work / "ledger.db")
        per_request = conn.execute("select cost_nusd from requests where user='probe'").fetchone()[0]
        budget_nusd = per_request * args.requests_worth
        budget_usd = Decimal(budget_nusd) / 10**9
        subprocess.run(
            [*cascade, "budget", "set", "racer", "--daily", str(budget_usd)],
            env=env,
            check=True,
            capture_output=True,
        )

        def worker(_: int) -> tuple[int, int, int]:
            ok = blocked = other = 0
            for _ in range(args.per_proc):
                code = subprocess.run(
                    [*cascade, "ask", QUERY, "--user", "racer"], env=env, capture_output=True
                ).returncode
                ok += code == 0
                blocked += code == 3
                other += code not in (0, 3)
            return ok, blocked, other

        started = time.perf_counter()
        with ThreadPoolExecutor(args.procs) as pool:
            results = list(pool.map(worker, range(args.procs)))
        wall = time.perf_counter() - started
        ok, blocked, other = (sum(r[i] for r in results) for i in range(3))
        spent = conn.execute("select coalesce(sum(cost_nusd),0) from requests where user='racer'").fetchone()[
            0
        ]
        rows_ok = conn.execute("select count(*) from requests where user='racer' and status='ok'").fetchone()[
            0
        ]
        left = conn.execute("select count(*) from reservations").fetchone()[0]
        integrity = conn.execute("pragma integrity_check").fetchone()[0]
    finally:
        server.terminate()
    allowed = budget_nusd // per_request
    overspend = max(spent - budget_nusd, 0)
    print(
        f"{args.procs} processes x {args.per_proc} `cascade ask`, {args.latency * 1000:.0f} ms server latency"
    )
    print(f"cost per request          ${Decimal(per_request) / 10**9}")
    print(f"daily budget              ${budget_usd}  (worth {allowed} requests)")
    print(f"spend recorded            ${Decimal(spent) / 10**9}")
    print(f"overspend                 ${Decimal(overspend) / 10**9:.2f}")
    print(f"successful / blocked      {ok} / {blocked}  (other exits: {other}; ok rows in ledger {rows_ok})")
    print(f"successes vs allowed      {ok} / {allowed} = {ok / allowed:.1%}")
    print(f"reservations left, integrity   {left}, {integrity}")
    print(f"wall time                 {wall:.1f} s")
    verdict = overspend == 0 and abs(ok - allowed) <= 0.02 * allowed and other == 0 and left == 0
    print(
        f"verdict: {'OK' if verdict else 'MISSED'} (target: $0.00 overspend, successes within 2% of allowed)"
    )


if __name__ == "__main__":
    main()
