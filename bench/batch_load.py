"""`cascade batch` under load, against the local replay server.

    python bench/batch_load.py [--rows 10000] [--latency 0.05] [--concurrency 32] [--telemetry]
                               [--db postgresql|postgresql://...]
    python bench/batch_load.py --telemetry --compare   # off, then on, side by side

Starts `python -m cascadeflow_cli.replay --latency L --port 0`, writes ROWS queries, runs
`cascade batch IN --output OUT --concurrency C` as a real process, and reports:
  - wall time (process start to exit) against the ideal ROWS x L / C (target <= 1.3x);
  - every input id in the output exactly once, and exactly one ledger request per row
    (by its batch external id), the ledger passing PRAGMA integrity_check;
  - the batch process's peak resident memory (os.wait4).
With --db postgresql the ledger is a PostgreSQL database (a throwaway local cluster,
tests/pg_server.py; or the URL given) and the integrity check is that the trigger-kept
spend totals equal the requests' sum.
With --telemetry, OpenTelemetry export is on, to a local OTLP/HTTP receiver started here
(bench/otlp_receiver.py), and the spans it received are counted (target <= 1.35x ideal).
With --compare, the same batch runs with telemetry off and then on, and the two are
printed side by side (wall against ideal, CPU time of the batch process, peak memory): on
a loaded machine the ratio of the two says what telemetry adds when the ideal cannot be
reached by either.
The replay server answers every draft with a generic answer the quality check accepts,
so each query is one model call of L seconds (the ideal assumes exactly that; escalations
are counted and reported).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from cascadeflow_cli.replay.server import spawn


def write_config(path: Path, url: str, db: Path) -> None:
    path.write_text(f"""
[ledger]
path = "{db}"

[[models]]
name = "mini"
model = "openai/gpt-4o-mini"
api_base = "{url}"
timeout = 30

[[models]]
name = "big"
model = "openai/gpt-4o"
api_base = "{url}"
timeout = 30

[cascade]
models = ["mini", "big"]
""", encoding="utf-8")


def write_queries(path: Path, rows: int) -> list[str]:
    ids = [f"row-{i:06d}" for i in range(rows)]
    with path.open("w", encoding="utf-8") as fh:
        for i, row_id in enumerate(ids):
            fh.write(json.dumps({"id": row_id, "query": f"What is the capital of country number {i}?",
                                 "user": f"user{i % 7}"}) + "\n")
    return ids


INTEGRITY = {  # one row, one column: 1 when the ledger is sound
    "sqlite": "select integrity_check = 'ok' from pragma_integrity_check",
    "postgresql": "select (select coalesce(sum(cost_nusd), 0) from spend_totals) = "
                  "(select coalesce(sum(cost_nusd), 0) from requests)",
}


def connect(db: Path | str) -> tuple[Any, str]:
    if str(db).startswith("postgresql"):
        import psycopg

        return psycopg.connect(str(db)), "postgresql"
    return sqlite3.connect(db), "sqlite"


def check(ids: list[str], out: Path, db: Path | str) -> dict[str, int]:
    """Exactly-once checks: output ids and ledger requests per row."""
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line]
    seen = Counter(str(r["id"]) for r in lines)
    conn, dialect = connect(db)
    ledger_rows = conn.execute(
        "select external_id, id from requests where external_id is not null").fetchall()
    per_row = Counter(ext.split(":", 1)[1] for ext, _ in ledger_rows)
    by_ext = {ext.split(":", 1)[1]: rid for ext, rid in ledger_rows}
    mismatched = sum(1 for r in lines if "request_id" in r and by_ext.get(str(r["id"])) != r["request_id"])
    return {
        "output_lines": len(lines),
        "missing_in_output": sum(1 for i in ids if seen[i] == 0),
        "duplicated_in_output": sum(1 for i in ids if seen[i] > 1),
        "errors_in_output": sum(1 for r in lines if "error" in r and "request_id" not in r),
        "escalated": sum(1 for r in lines if r.get("escalated")),
        "ledger_requests": conn.execute("select count(*) from requests").fetchone()[0],
        "missing_in_ledger": sum(1 for i in ids if per_row[i] == 0),
        "duplicated_in_ledger": sum(1 for i in ids if per_row[i] > 1),
        "output_not_matching_ledger": mismatched,
        "integrity_ok": int(bool(conn.execute(INTEGRITY[dialect]).fetchone()[0])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--db", default="", help="'postgresql' (a throwaway local server) or a "
                        "postgresql:// URL; default: a SQLite file in the work directory")
    parser.add_argument("--telemetry", action="store_true", help="export spans and metrics to a local "
                        "OTLP/HTTP receiver")
    parser.add_argument("--compare", action="store_true", help="with --telemetry: run off, then on")
    opts = parser.parse_args()
    if opts.compare:
        return compare(opts)
    if opts.workdir is None:  # a temporary directory, removed afterwards
        with tempfile.TemporaryDirectory(prefix="cascade-batch-load-") as tmp:
            bench(opts, Path(tmp))
        return
    opts.workdir.mkdir(parents=True, exist_ok=True)
    bench(opts, opts.workdir)


def compare(opts: argparse.Namespace) -> None:
    figures = {}
    for on in (False, True):
        opts.telemetry = on
        with tempfile.TemporaryDirectory(prefix="cascade-batch-load-") as tmp:
            figures[on] = bench(opts, Path(tmp))
        print()
    off, on = figures[False], figures[True]
    print(f"telemetry off vs on, {opts.rows:,} rows: wall {off['wall']:.2f}s vs {on['wall']:.2f}s "
          f"({on['wall'] / off['wall']:.2f}x), CPU {off['cpu']:.2f}s vs {on['cpu']:.2f}s "
          f"({on['cpu'] / off['cpu']:.2f}x), peak RSS {off['rss_mb']:.0f} MB vs {on['rss_mb']:.0f} MB")


def bench(opts: argparse.Namespace, work: Path) -> dict[str, float]:
    """One run; with ``--db postgresql`` on a throwaway server of its own."""
    if opts.db != "postgresql":
        return run_bench(opts, work)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.pg_server
    from tests import pg_server

    pg = pg_server.start()
    try:
        return run_bench(argparse.Namespace(**{**vars(opts), "db": pg.url(pg.create_database("batch"))}),
                         work)
    finally:
        pg.stop()


def run_bench(opts: argparse.Namespace, work: Path) -> dict[str, float]:
    db, out, queries = work / "ledger.db", work / "out.jsonl", work / "in.jsonl"
    config = work / "cascadeflow.toml"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    out.unlink(missing_ok=True)
    ids = write_queries(queries, opts.rows)
    server, url = spawn("--latency", str(opts.latency))
    receiver = None
    try:
        write_config(config, url, db)
        if opts.telemetry:
            from otlp_receiver import Receiver  # a sibling script: bench/ is on sys.path

            receiver = Receiver()
            with config.open("a", encoding="utf-8") as fh:
                fh.write(f'\n[telemetry]\nenabled = true\nendpoint = "{receiver.url}"\n')
        env = {**os.environ, "CASCADE_CONFIG": str(config)}
        env.pop("CASCADE_DB", None)
        if opts.db:
            env["CASCADE_DB"] = opts.db
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "cascadeflow_cli", "batch", str(queries), "--output",
                                 str(out), "--concurrency", str(opts.concurrency)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
    finally:
        server.terminate()
        server.wait()
        if receiver is not None:
            receiver.stop()
    if code != 0:
        raise SystemExit(f"cascade batch failed ({code}): {err}")
    ideal = opts.rows * opts.latency / opts.concurrency
    result = check(ids, out, opts.db or db)
    print(f"cascade batch: {opts.rows:,} rows, latency {opts.latency * 1000:.0f} ms, concurrency "
          f"{opts.concurrency}, ledger {'PostgreSQL' if opts.db else 'SQLite'}; "
          f"load average {os.getloadavg()[0]:.2f}")
    target = 1.35 if opts.telemetry else 1.3
    print(f"  wall {wall:.2f}s vs ideal {ideal:.2f}s = {wall / ideal:.2f}x (target <= {target:.2f}x); "
          f"{opts.rows / wall:,.0f} rows/s")
    if receiver is not None:
        warned = [line for line in err.splitlines() if line.startswith("warning: telemetry")]
        print(f"  telemetry: {receiver.spans:,} spans received in {receiver.posts:,} posts; "
              f"{warned[0] if warned else 'no delivery warning'}")
    cpu = usage.ru_utime + usage.ru_stime
    print(f"  peak RSS of the batch process: {usage.ru_maxrss / 1024:.0f} MB; CPU {cpu:.2f}s "
          f"({cpu / opts.rows * 1000:.2f} ms a row)")
    print(f"  {err.strip().splitlines()[-1]}")
    for key, value in result.items():
        print(f"  {key}: {value:,}")
    ok = (result["missing_in_output"] == result["duplicated_in_output"] == 0
          and result["missing_in_ledger"] == result["duplicated_in_ledger"] == 0
          and result["output_not_matching_ledger"] == 0 and result["integrity_ok"] == 1)
    print("  exactly once: " + ("yes" if ok else "NO"))
    met = ok and wall / ideal <= target
    print(f"verdict: {'OK' if met else 'MISSED'} (target: <= {target:.2f}x ideal, every row exactly once)")
    return {"wall": wall, "cpu": cpu, "rss_mb": usage.ru_maxrss / 1024}


if __name__ == "__main__":
    main()
