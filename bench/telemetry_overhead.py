"""What OpenTelemetry export costs `cascade ask`, side by side with telemetry off.

    python bench/telemetry_overhead.py [--runs 9] [--flush-timeout 2.0] [--latency 0]
    python bench/telemetry_overhead.py --in-process [--runs 9]   # CPU of telemetry's own work

One replay server; `cascade ask` as a real process, alternating between four set-ups
(so load drifts hit them alike): telemetry off (the baseline), on with a reachable local
OTLP/HTTP receiver (bench/otlp_receiver.py), on with an unreachable collector (a closed
loopback port), and on with a collector that accepts the connection and never answers.
Reports the median and p90 wall time of each and the difference to the baseline.
``--latency`` gives the model a response time (a real model takes hundreds of ms; the SDK
starts in the background, so it overlaps that wait); 0 shows telemetry's full cost.
Targets: reachable <= +60 ms; unreachable and hung <= +flush_timeout.

On a loaded machine wall and even CPU times of whole processes wander by tens of ms
(interpreter start, imports from a cold page cache). ``--in-process`` isolates what
telemetry adds: each child process runs `cascade ask` three times through the real entry
point (main()): once to warm up with telemetry off, then off and on (local collector)
in turn, and reports the process CPU time (all its threads: the post included) and wall
time of the last two. The "on" run pays the import of the telemetry modules, since the
child never imported them before. Medians over the children, side by side.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from otlp_receiver import Receiver  # a sibling script: bench/ is on sys.path

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer

CONFIG = """
[[models]]
name = "mini"
model = "openai/gpt-4o-mini"
api_base = "{url}"

[[models]]
name = "big"
model = "openai/gpt-4o"
api_base = "{url}"

[cascade]
models = ["mini", "big"]
"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def silent_collector() -> tuple[socket.socket, int]:
    """Accepts connections and never answers (the kernel's backlog does the accepting)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    held: list[socket.socket] = []

    def hold() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=hold, daemon=True).start()
    return sock, sock.getsockname()[1]


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def child_env(**extra: str) -> dict[str, str]:
    """The ask's environment: no OTEL_* of ours, and a bytecode cache as every installed
    package has (PYTHONDONTWRITEBYTECODE would make each run compile every module from
    source, telemetry's included), kept outside the repository."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(PYCACHE), **extra}
    for name in [k for k in env if k.startswith("OTEL_")] + ["PYTHONDONTWRITEBYTECODE"]:
        env.pop(name, None)
    return env


PYCACHE = Path(tempfile.gettempdir()) / "cascade-telemetry-bench-pycache"


def run_ask(config: Path, db: Path) -> tuple[float, float, str]:
    env = child_env(CASCADE_CONFIG=str(config), CASCADE_DB=str(db))
    cpu = child_cpu()
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "cascadeflow_cli", "ask", "What is the capital of France?"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"cascade ask failed: {proc.stderr}")
    return wall, child_cpu() - cpu, proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--flush-timeout", type=float, default=2.0)
    parser.add_argument("--latency", type=float, default=0.0, help="model latency, seconds")
    parser.add_argument("--in-process", action="store_true",
                        help="telemetry's CPU within one process (see above)")
    opts = parser.parse_args()
    server = ReplayServer().start()
    server.set_behavior(
        "gpt-4o-mini",
        ModelBehavior(
            answer="Paris is the capital of France, and its largest "
            "city; it has been the seat of government for centuries.",
            latency_s=opts.latency,
        ),
    )
    receiver = Receiver()
    hung, hung_port = silent_collector()
    try:
        with tempfile.TemporaryDirectory(prefix="cascade-otel-bench-") as tmp:
            work = Path(tmp)
            base = CONFIG.format(url=server.base_url)
            section = '\n[telemetry]\nenabled = true\nflush_timeout = {t}\nendpoint = "{e}"\n'
            setups = {
                "off (baseline)": base,
                "on, local collector": base + section.format(t=opts.flush_timeout, e=receiver.url),
                "on, unreachable": base
                + section.format(t=opts.flush_timeout, e=f"http://127.0.0.1:{closed_port()}"),
                "on, hung collector": base
                + section.format(t=opts.flush_timeout, e=f"http://127.0.0.1:{hung_port}"),
            }
            paths = {}
            for i, (name, text) in enumerate(setups.items()):
                paths[name] = work / f"c{i}.toml"
                paths[name].write_text(text, encoding="utf-8")
            times: dict[str, list[float]] = {name: [] for name in setups}
            cpus: dict[str, list[float]] = {name: [] for name in setups}
            warnings: dict[str, str] = {}
            for name in setups:  # warm-up: the first run of each pays for .pyc files
                run_ask(paths[name], work / "ledger.db")
            if opts.in_process:
                return in_process(paths, work, receiver, opts.runs, opts.flush_timeout)
            for _ in range(opts.runs):
                for name in setups:
                    wall, cpu, err = run_ask(paths[name], work / "ledger.db")
                    times[name].append(wall)
                    cpus[name].append(cpu)
                    lines = [x for x in err.splitlines() if x.startswith("warning: telemetry")]
                    if lines:
                        warnings[name] = lines[0]
    finally:
        server.stop()
        receiver.stop()
        hung.close()
    base_median = statistics.median(times["off (baseline)"])
    print(
        f"cascade ask, {opts.runs} runs each (alternating), flush_timeout {opts.flush_timeout:g}s, "
        f"model latency {opts.latency * 1000:.0f} ms; timings are noisy on a shared machine"
    )
    base_cpu = statistics.median(cpus["off (baseline)"])
    print(f"  {'set-up':<22} {'median':>8} {'p90':>8} {'vs off':>9} {'CPU':>7} {'vs off':>8}  target (wall)")
    targets = {
        "on, local collector": 0.060,
        "on, unreachable": opts.flush_timeout,
        "on, hung collector": opts.flush_timeout,
    }
    verdicts = []
    for name, values in times.items():
        median = statistics.median(values)
        p90 = sorted(values)[max(0, round(0.9 * len(values)) - 1)]
        delta = median - base_median
        target = targets.get(name)
        mark = ""
        if target is not None:
            met = delta <= target
            verdicts.append(met)
            mark = f"<= +{target * 1000:.0f} ms {'OK' if met else 'MISSED'}"
        cpu = statistics.median(cpus[name])
        print(
            f"  {name:<22} {median * 1000:6.0f}ms {p90 * 1000:6.0f}ms {delta * 1000:+7.0f}ms "
            f"{cpu * 1000:5.0f}ms {(cpu - base_cpu) * 1000:+6.0f}ms  {mark}"
        )
    print(
        f"  spans received by the local collector: {receiver.spans:,} "
        f"(expected {2 * (opts.runs + 1):,}: 2 per ask)"
    )
    for name, line in warnings.items():
        print(f"  {name}: {line[:150]}")
    print("  (CPU: user+system time of the ask process, less sensitive to the machine's load than wall time)")
    print(f"verdict: {'OK' if all(verdicts) else 'MISSED'}")


CHILD = """
import json, os, sys, time
from cascadeflow_cli.cli.app import main

def run(config):
    os.environ["CASCADE_CONFIG"] = config
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        main(["ask", "What is the capital of France?"])
    except SystemExit as exc:
        assert not exc.code, exc.code
    return time.perf_counter() - wall, time.process_time() - cpu

run(sys.argv[1])  # warm-up, telemetry off
print(json.dumps([run(config) for config in sys.argv[1:]]), file=sys.stderr)
"""


def in_process(paths: dict[str, Path], work: Path, receiver: Receiver, runs: int, timeout: float) -> None:
    """Each child: warm-up off, then every set-up in order (off first). The first "on" run
    pays the telemetry modules' import; the unreachable and hung runs come after it."""
    import json

    env = child_env(CASCADE_DB=str(work / "ledger.db"))
    names = list(paths)
    got: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    before = receiver.spans
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, *(str(paths[n]) for n in names)],
            env=env, capture_output=True, text=True, timeout=600,
        )
        if proc.returncode != 0:
            raise SystemExit(f"child failed: {proc.stderr[-500:]}")
        for name, figures in zip(names, json.loads(proc.stderr.strip().splitlines()[-1]), strict=True):
            got[name].append(tuple(figures))
    print(f"cascade ask in-process (main()), {runs} children: warm-up off, then each set-up in turn; "
          f"flush_timeout {timeout:g}s")
    print(f"  {'set-up':<22} {'wall':>8} {'CPU':>8}   added (median of per-child differences)")
    targets = {"on, local collector": 0.060, "on, unreachable": timeout, "on, hung collector": timeout}
    verdicts = []
    for name in names:
        wall = statistics.median(w for w, _ in got[name])
        cpu = statistics.median(c for _, c in got[name])
        line = f"  {name:<22} {wall * 1000:6.1f}ms {cpu * 1000:6.1f}ms"
        if name in targets:
            pairs = list(zip(got[names[0]], got[name], strict=True))
            d_wall = statistics.median(b[0] - a[0] for a, b in pairs)
            d_cpu = statistics.median(b[1] - a[1] for a, b in pairs)
            met = d_wall <= targets[name]
            verdicts.append(met)
            line += (f"   wall {d_wall * 1000:+7.1f} ms, CPU {d_cpu * 1000:+6.1f} ms "
                     f"(target wall <= +{targets[name] * 1000:.0f} ms: {'OK' if met else 'MISSED'})")
        print(line)
    print(f"  spans received by the local collector: {receiver.spans - before:,} (expected {2 * runs:,})")
    print(f"verdict: {'OK' if all(verdicts) else 'MISSED'}")


if __name__ == "__main__":
    main()
