"""Budget race: processes on two "hosts" × `cascade ask` against one user's daily budget
and one team budget, on SQLite or PostgreSQL.

A local replay server answers every request after 50 ms with the same answer, so each
request costs the same known amount. User "racer" has a daily budget worth
``--requests-worth`` requests; team "crew" (members racer and mate) a monthly budget worth
1.5 times that. Half the processes of each host ask as racer, half as mate; the two hosts
are two config directories (same budgets) with processes of their own. Reports the spend
recorded against each budget (overspend must be $0.00 on both), successes against what
the budgets allow, leftover reservations and wall time.

    python bench/budget_race.py [--db PATH|postgresql://...|postgresql] [--procs 16]
                                [--per-proc 25] [--requests-worth 100] [--compare-sqlite]

``--db postgresql`` starts a throwaway local cluster (tests/pg_server.py) for the run;
``--compare-sqlite`` runs the same race on a SQLite file afterwards, for the wall time.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.pg_server, from a checkout

from cascadeflow_cli.ledger.backend import open_store
from cascadeflow_cli.replay.server import spawn

ANSWER = (
    "Paris is the capital of France. It has been the seat of the French government for "
    "centuries and is the country's largest city."
)
QUERY = "What is the capital of France?"
IN_PRICE, OUT_PRICE = Decimal("0.15"), Decimal("0.60")  # USD per million tokens
USERS = ("racer", "mate")


def config_text(url: str, team_usd: Decimal | None) -> str:
    # the server counts ceil(chars/4) tokens; max_tokens just above the answer keeps the
    # worst case (what is reserved) close to the real cost
    answer_tokens = math.ceil(len(ANSWER) / 4)
    team = (f'\n[budgets.teams.crew]\nmembers = ["racer", "mate"]\nmonthly = {team_usd}\n'
            if team_usd is not None else "")
    return f"""
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
{team}"""


def race(db: str, url: str, args: argparse.Namespace) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="budget-race-"))
    hosts = [work / "host-a", work / "host-b"]
    cascade = [sys.executable, "-m", "cascadeflow_cli"]
    probe_env = {**os.environ, "CASCADE_CONFIG": str(work / "probe.toml"), "CASCADE_DB": db}
    (work / "probe.toml").write_text(config_text(url, None))
    # one request to learn the exact cost of a request, then set the budgets from it
    subprocess.run([*cascade, "ask", QUERY, "--user", "probe", "--json"], env=probe_env, check=True,
                   capture_output=True)
    with open_store(db) as ledger:
        per_request = ledger.total_spend("probe")
    user_nusd = per_request * args.requests_worth
    team_nusd = per_request * (args.requests_worth * 3 // 2)
    team_usd = Decimal(team_nusd) / 10**9
    for host in hosts:
        host.mkdir()
        (host / "cascadeflow.toml").write_text(config_text(url, team_usd))
    envs = [{**os.environ, "CASCADE_CONFIG": str(h / "cascadeflow.toml"), "CASCADE_DB": db} for h in hosts]
    subprocess.run([*cascade, "budget", "set", "racer", "--daily", str(Decimal(user_nusd) / 10**9)],
                   env=envs[0], check=True, capture_output=True)

    def worker(n: int) -> tuple[int, int, int]:
        env, user = envs[n % 2], USERS[(n // 2) % 2]  # both hosts, both users
        ok = blocked = other = 0
        for _ in range(args.per_proc):
            code = subprocess.run([*cascade, "ask", QUERY, "--user", user], env=env,
                                  capture_output=True).returncode
            ok += code == 0
            blocked += code == 3
            other += code not in (0, 3)
        return ok, blocked, other

    started = time.perf_counter()
    with ThreadPoolExecutor(args.procs) as pool:
        results = list(pool.map(worker, range(args.procs)))
    wall = time.perf_counter() - started
    ok, blocked, other = (sum(r[i] for r in results) for i in range(3))
    with open_store(db) as ledger:
        spent = {u: ledger.total_spend(u) for u in USERS}
        left = sum(1 for u in USERS if ledger.reserved_spend(u))
        reserved = sum(ledger.reserved_spend(u) for u in USERS)
    allowed_team = team_nusd // per_request
    return {"per_request": per_request, "user_nusd": user_nusd, "team_nusd": team_nusd, "spent": spent,
            "ok": ok, "blocked": blocked, "other": other, "left": left, "reserved": reserved,
            "allowed": allowed_team, "wall": wall}


def report(name: str, r: dict[str, object], args: argparse.Namespace) -> bool:
    spent: dict[str, int] = r["spent"]  # type: ignore[assignment]
    user_over = max(spent["racer"] - r["user_nusd"], 0)  # type: ignore[operator]
    team_over = max(sum(spent.values()) - r["team_nusd"], 0)  # type: ignore[operator]
    ok, allowed = int(r["ok"]), int(r["allowed"])  # type: ignore[call-overload]
    print(f"--- {name}: {args.procs} processes on 2 hosts x {args.per_proc} `cascade ask`")
    print(f"cost per request            ${Decimal(r['per_request']) / 10**9}")  # type: ignore[operator]
    print(f"racer daily / crew monthly  ${Decimal(r['user_nusd']) / 10**9} / "  # type: ignore[operator]
          f"${Decimal(r['team_nusd']) / 10**9}  (team worth {allowed} requests)")  # type: ignore[operator]
    usd = {k: Decimal(v) / 10**9 for k, v in spent.items()}
    print(f"spent racer / mate          ${usd['racer']} / ${usd['mate']}")
    print(f"overspend user / team       ${Decimal(user_over) / 10**9:.2f} / "
          f"${Decimal(team_over) / 10**9:.2f}")
    print(f"successful / blocked        {ok} / {r['blocked']}  (other exits: {r['other']})")
    print(f"admitted vs allowed         {ok} / {allowed} = {ok / allowed:.1%}")
    print(f"reservations left           {r['left']} (${Decimal(r['reserved']) / 10**9})")  # type: ignore[operator]
    print(f"wall time                   {float(r['wall']):.1f} s")  # type: ignore[arg-type]
    good = user_over == 0 and team_over == 0 and ok >= 0.95 * allowed and r["other"] == 0 and r["left"] == 0
    print(f"verdict: {'OK' if good else 'MISSED'} (target: $0.00 overspend on both, >= 95% admitted, "
          "0 reservations left)")
    return good


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="", help="ledger path or URL; 'postgresql' starts a throwaway server")
    ap.add_argument("--procs", type=int, default=16)
    ap.add_argument("--per-proc", type=int, default=25)
    ap.add_argument("--requests-worth", type=int, default=100)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--compare-sqlite", action="store_true")
    args = ap.parse_args()
    pg = None
    db = args.db or str(Path(tempfile.mkdtemp(prefix="budget-race-db-")) / "ledger.db")
    if db == "postgresql":
        from tests import pg_server

        pg = pg_server.start()
        db = pg.url(pg.create_database("race"))
    server, url = spawn("--latency", str(args.latency))
    try:
        print(f"load average before: {os.getloadavg()[0]:.2f}")
        report("PostgreSQL" if "://" in db and not db.startswith("sqlite") else "SQLite", race(db, url, args),
               args)
        if args.compare_sqlite:
            lite = str(Path(tempfile.mkdtemp(prefix="budget-race-db-")) / "ledger.db")
            report("SQLite (same run)", race(lite, url, args), args)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        server.terminate()
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
