"""What the quality check costs per draft, and what `cascade calibrate` costs on 5,000 rows.

* per draft: the rule validator vs the calibrated validator (features + the model's dot
  product) on real drafts (the dev sets of /work/shared/data/cascade, else the synthetic
  test fixture); median and 95th percentile over every draft, several rounds. Target:
  the calibrated check adds <= 1 ms per draft (no semantic extra).
* `cascade calibrate` on 5,000 labelled rows (the drafts repeated with fresh ids), the
  real command in a subprocess, end to end. Target: <= 10 s.
* what running a draft's code costs (opt-in ``execute_code``): per draft with Python (the
  sandboxed child's wall and CPU time, no target: it is not part of the 1 ms check), and
  `cascade calibrate --execute-code` on the same 5,000 rows (``--no-exec``: skip).

  With the kernel sandbox (quality/sandbox.py) where available, side by side with the
  child under process limits only (``--exec-only``: just these per-draft figures).

    python bench/quality_overhead.py [--rounds 3] [--rows 5000] [--no-exec | --exec-only]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cascadeflow_cli.quality.calibrate import calibrate_rows
from cascadeflow_cli.quality.calibrated import CalibratedValidator
from cascadeflow_cli.quality.validator import QualityValidator

DATA = Path("/work/shared/data/cascade")
FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "calibration_sample.jsonl"


def drafts() -> list[dict]:
    rows = []
    for name in ("gsm8k_mixtral_gpt4_dev.jsonl", "mbpp_mixtral_gpt4_dev.jsonl"):
        path = DATA / name
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                r = json.loads(line)
                rows.append(
                    {
                        "query": r["query"],
                        "response": r["draft_answer"],
                        "correct": r["draft_correct"],
                        "verifier_correct": r["verifier_correct"],
                    }
                )
    if not rows:
        rows = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]
    return rows


def per_draft(check, rows: list[dict], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        for r in rows:
            t = time.perf_counter()
            check(r["query"], r["response"])
            times.append((time.perf_counter() - t) * 1e3)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--no-exec", action="store_true", help="skip the code-execution figures")
    parser.add_argument("--exec-only", action="store_true", help="only the per-draft code-execution figures")
    args = parser.parse_args()
    rows = drafts()
    if args.exec_only:
        execution(rows, args.rounds)
        return 0
    rules = QualityValidator("balanced")
    calibrated = CalibratedValidator(calibrate_rows(rows).calibration)
    rule_t = per_draft(lambda q, r: rules.validate(q, r), rows, args.rounds)
    cal_t = per_draft(lambda q, r: calibrated.validate(q, r), rows, args.rounds)

    def q95(x: list[float]) -> float:
        return statistics.quantiles(x, n=20)[-1]

    print(f"per draft over {len(rows)} drafts x {args.rounds} rounds (ms):")
    print(f"  {'check':<12} {'median':>8} {'p95':>8}")
    print(f"  {'rules':<12} {statistics.median(rule_t):8.3f} {q95(rule_t):8.3f}")
    print(f"  {'calibrated':<12} {statistics.median(cal_t):8.3f} {q95(cal_t):8.3f}")
    added = statistics.median(cal_t) - statistics.median(rule_t)
    print(f"  calibrated adds {added:.3f} ms median per draft (target <= 1 ms)")
    # CPU time is what a loaded machine distorts least (wall time on a shared machine
    # charges a long check for every time it is preempted)
    cpu = {}
    for name, check in (("rules", rules.validate), ("calibrated", calibrated.validate)):
        start = time.process_time()
        for _ in range(args.rounds):
            for r in rows:
                check(r["query"], r["response"])
        cpu[name] = (time.process_time() - start) / (args.rounds * len(rows)) * 1e3
    print(
        f"  cpu time per draft: rules {cpu['rules']:.3f} ms, calibrated {cpu['calibrated']:.3f} ms, "
        f"adds {cpu['calibrated'] - cpu['rules']:.3f} ms ({cpu['calibrated'] / cpu['rules']:.2f}x the rules)"
    )
    # With routing on, the cascade has detected the query's domain before the draft comes
    # back and hands it to the check, which then skips its own detection (engine/cascade.py)
    from cascadeflow_cli.routing.domain import DomainDetector

    detector = DomainDetector()
    known = {r["query"]: detector.detect(r["query"]).domain for r in rows}
    routed_t = per_draft(lambda q, r: calibrated.validate(q, r, domain=known[q]), rows, args.rounds)
    rules_routed_t = per_draft(lambda q, r: rules.validate(q, r, domain=known[q]), rows, args.rounds)
    print(f"  with the domain known (routing on): rules {statistics.median(rules_routed_t):.3f}, calibrated "
          f"{statistics.median(routed_t):.3f}: adds "
          f"{statistics.median(routed_t) - statistics.median(rules_routed_t):.3f} ms median")

    if not args.no_exec:
        execution(rows, args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "rows.jsonl"
        with big.open("w", encoding="utf-8") as fh:
            for i in range(args.rows):
                fh.write(json.dumps({**rows[i % len(rows)], "id": i}) + "\n")
        # explicit both ways: unset, execution is on where the kernel sandbox is available
        for extra in [["--no-execute-code"]] if args.no_exec else [["--no-execute-code"], ["--execute-code"]]:
            if not calibrate_timed(big, Path(tmp), args.rows, extra):
                return 1
    return 0


def execution(rows: list[dict], rounds: int) -> None:
    """Wall and CPU time (ours + the sandboxed child's) of running each draft's Python,
    with the kernel sandbox (quality/sandbox.py, where available) and without it, the
    two interleaved draft by draft so the machine's load weighs on both alike."""
    from cascadeflow_cli.quality import sandbox
    from cascadeflow_cli.quality.code_exec import program_of, run_program
    from cascadeflow_cli.quality.fork_server import cpu_seconds

    programs = [p for p in (program_of(r["response"]) for r in rows) if not p.empty]
    if not programs:
        return
    support = sandbox.support()
    modes = [False, True] if support.available else [False]
    if not support.available:
        print(f"no kernel sandbox here: {support.reason}")
    for kernel in modes:
        run_program(programs[0], kernel_sandbox=kernel)  # the lazy imports
    walls: dict[bool, list[float]] = {k: [] for k in modes}
    own = dict.fromkeys(modes, 0.0)
    child = dict.fromkeys(modes, 0.0)
    for _ in range(rounds):
        for program in programs:
            for kernel in modes:
                start, served = os.times(), cpu_seconds()
                t = time.perf_counter()
                run_program(program, kernel_sandbox=kernel)
                walls[kernel].append((time.perf_counter() - t) * 1e3)
                end = os.times()
                own[kernel] += end.user - start.user + end.system - start.system
                # our children, or the kernel sandbox's fork server's (its own CPU included)
                child[kernel] += (end.children_user - start.children_user + end.children_system
                                  - start.children_system + cpu_seconds() - served)  # fmt: skip
    n = rounds * len(programs)
    for kernel in modes:
        w = walls[kernel]
        print(
            f"running the code (execute_code), {'kernel sandbox' if kernel else 'process limits only'}, "
            f"{len(programs)} drafts with Python x {rounds}: wall median {statistics.median(w):.2f} ms, "
            f"p95 {statistics.quantiles(w, n=20)[-1]:.1f} ms; CPU {own[kernel] / n * 1e3:.2f} ms here + "
            f"{child[kernel] / n * 1e3:.2f} ms in the child per draft (load average {os.getloadavg()[0]:.1f})"
        )
    if support.available:
        added = (own[True] + child[True] - own[False] - child[False]) / n * 1e3
        wall = statistics.median(walls[True]) - statistics.median(walls[False])
        print(f"  the kernel sandbox adds {added:.2f} ms CPU and {wall:.2f} ms median wall per draft")


def adopt_orphans() -> None:
    """Become the subreaper of what the command leaves (the kernel sandbox's fork servers
    of its feature workers outlive them by a moment), so their CPU is counted here."""
    import ctypes

    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def reap_orphans() -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.01)


def calibrate_timed(big: Path, tmp: Path, rows: int, extra: list[str]) -> bool:
    adopt_orphans()
    t = time.perf_counter()
    before = os.times()
    command = [sys.executable, "-m", "cascadeflow_cli", "calibrate", str(big), "--output",
               str(tmp / "cal.json"), "--prices", "0.6,0.6,10,30", "--json", *extra]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, cwd=tmp)
    took = time.perf_counter() - t
    reap_orphans()
    after = os.times()
    if run.returncode != 0:
        print(run.stderr, file=sys.stderr)
        return False
    # CPU of the command and its feature workers (children's user + system): what a
    # loaded machine distorts least; on N idle cores the wall time is about CPU / N
    # for the parallel feature part plus the serial fit.
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    print(
        f"cascade calibrate {' '.join(extra)} on {rows} rows: {took:.2f} s end to end, "
        f"{cpu:.2f} s CPU in all (target <= 10 s; load average {os.getloadavg()[0]:.1f})"
    )
    return True


if __name__ == "__main__":
    raise SystemExit(main())
