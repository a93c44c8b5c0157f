"""Ledger I/O at scale: bulk import, then `cascade export --csv`, through the real CLI.

    python bench/ledger_io.py [--rows 1000000] [--workdir DIR]

1. Writes a history CSV of ROWS plain rows (timestamp,user,model,provider,domain,status,
   finish_reason,input_tokens,cached_tokens,output_tokens,cost: ~100 MB for a million) and
   runs `cascade import` on it into an empty ledger: recorded calls per second (target
   >= 5,000) and peak RSS; then imports it again (idempotent: nothing new).
2. Runs `cascade export --csv` of the whole ledger and of a tenth of it: rows per second
   (target >= 100,000 for the million) and peak RSS of both (flat memory: the two
   should be about the same).
3. Imports the export into a second empty ledger and exports that: the two CSV files
   must be byte-identical (lossless round trip).

Peak memory is each child's own maximum resident set size (os.wait4).
"""

from __future__ import annotations

import argparse
import filecmp
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

USERS = [f"user{i:02d}" for i in range(20)]
MODELS = [("openai/gpt-4o-mini", "openai", 0.15, 0.60), ("openai/gpt-4o", "openai", 2.5, 10.0),
          ("anthropic/claude-3-5-haiku-20241022", "anthropic", 0.8, 4.0)]
DOMAINS = ["code", "math", "general", "finance", "legal", "medical"]


def write_history(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    step = timedelta(days=120) / rows
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("timestamp,user,model,provider,domain,status,finish_reason,input_tokens,"
                 "cached_tokens,output_tokens,cost\n")
        lines = []
        for i in range(rows):
            model, provider, pin, pout = MODELS[rng.randrange(3)]
            tin, tout = rng.randint(20, 2000), rng.randint(10, 800)
            cached = rng.choice((0, 0, 0, tin // 2))
            cost = (tin * pin + tout * pout) / 1e6
            ts = (start + step * i).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            finish = "length" if tout > 780 else "stop"
            lines.append(f"{ts},{USERS[rng.randrange(20)]},{model},{provider},"
                         f"{DOMAINS[rng.randrange(6)]},ok,{finish},{tin},{cached},{tout},{cost:.9f}\n")
            if len(lines) >= 10_000:
                fh.writelines(lines)
                lines.clear()
        fh.writelines(lines)


def run(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run `cascade ARGS`; returns (seconds, peak RSS in MB, stderr)."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "cascadeflow_cli", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"cascade {' '.join(args)} failed ({proc.returncode}): {err}")
    return seconds, usage.ru_maxrss / 1024, err.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--skip-roundtrip", action="store_true")
    opts = parser.parse_args()
    if opts.workdir is None:  # a temporary directory, removed afterwards
        with tempfile.TemporaryDirectory(prefix="cascade-ledger-io-") as tmp:
            return bench(opts, Path(tmp))
    opts.workdir.mkdir(parents=True, exist_ok=True)
    return bench(opts, opts.workdir)


def bench(opts: argparse.Namespace, work: Path) -> None:
    env = {**os.environ, "CASCADE_CONFIG": str(work / "cascadeflow.toml")}
    (work / "cascadeflow.toml").write_text("[ledger]\ntimezone = \"UTC\"\n", encoding="utf-8")
    history = work / "history.csv"
    for suffix in ("", "-wal", "-shm"):
        for name in ("a.db", "b.db"):
            Path(f"{work / name}{suffix}").unlink(missing_ok=True)

    started = time.perf_counter()
    write_history(history, opts.rows)
    size_mb = history.stat().st_size / 1e6
    print(f"history: {opts.rows:,} rows, {size_mb:.1f} MB, written in {time.perf_counter() - started:.1f}s")

    env_a = {**env, "CASCADE_DB": str(work / "a.db")}
    seconds, rss, _ = run(["import", str(history)], env_a)
    import_rate = opts.rows / seconds
    print(f"import: {opts.rows:,} calls in {seconds:.1f}s = {import_rate:,.0f} calls/s "
          f"(target >= 5,000); peak RSS {rss:.0f} MB")
    seconds, rss, _ = run(["import", str(history)], env_a)
    print(f"import again (idempotent, nothing new): {seconds:.1f}s; peak RSS {rss:.0f} MB")

    out = work / "export.csv"
    seconds, rss, _ = run(["export", "--csv", "--output", str(out)], env_a)
    export_rate = opts.rows / seconds
    print(f"export --csv: {opts.rows:,} rows in {seconds:.2f}s = {export_rate:,.0f} rows/s "
          f"(target >= 100,000); peak RSS {rss:.0f} MB; {out.stat().st_size / 1e6:.0f} MB")
    tenth = (datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=12)).strftime("%Y-%m-%d")
    seconds_small, rss_small, err = run(["export", "--csv", "--until", tenth, "--output",
                                         str(work / "small.csv")], env_a)
    print(f"export --csv --until {tenth}: {err}; {seconds_small:.2f}s; peak RSS {rss_small:.0f} MB "
          f"(flat memory: vs {rss:.0f} MB for all rows)")
    for flag in ("--jsonl", "--json"):
        seconds, rss, _ = run(["export", flag, "--output", str(work / f"export.{flag[2:]}")], env_a)
        print(f"export {flag}: {opts.rows / seconds:,.0f} rows/s; peak RSS {rss:.0f} MB")

    same = True
    if not opts.skip_roundtrip:
        same = round_trip(work, env, out, opts.rows)
    met = import_rate >= 5_000 and export_rate >= 100_000 and same
    print(f"verdict: {'OK' if met else 'MISSED'} (targets: import >= 5,000 calls/s, export --csv "
          f">= 100,000 rows/s with flat memory, identical round trip)")


def round_trip(work: Path, env: dict[str, str], out: Path, rows: int) -> bool:
    """Import the export into an empty ledger, export again: byte-identical?"""
    env_b = {**env, "CASCADE_DB": str(work / "b.db")}
    seconds, rss, _ = run(["import", str(out)], env_b)
    print(f"import of the export (export format, {out.stat().st_size / 1e6:.0f} MB): "
          f"{rows / seconds:,.0f} calls/s; peak RSS {rss:.0f} MB")
    again = work / "export-again.csv"
    run(["export", "--csv", "--output", str(again)], env_b)
    same = filecmp.cmp(out, again, shallow=False)
    print(f"round trip export -> import -> export: {'identical' if same else 'DIFFERENT'}")
    return same


if __name__ == "__main__":
    main()
