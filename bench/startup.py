"""Start-up time of the `cascade` CLI side by side with simonw's `llm` CLI.

Both talk to one ReplayServer (``python -m cascadeflow_cli.replay``, a subprocess on
127.0.0.1). All state lives in a temp dir: cascade's --config and CASCADE_DB, llm's
LLM_USER_PATH (with an extra-openai-models.yaml), and HOME/XDG dirs. Each pair of
commands runs alternately, 1 warm-up then --runs measured runs each; medians of wall
time. Targets: `--help` and `logs -n 1` <= 0.4 x llm's; `ask` <= 1.1 x llm's.

    python bench/startup.py [--runs 9]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cascadeflow_cli.replay.server import spawn

PROMPT = "What is the capital of France, and why did it become the capital?"
SEED_PROMPTS = [f"Seed question number {i}: name a prime number larger than {i * 10}."
                for i in range(5)]


@dataclass(frozen=True)
class Pair:
    name: str
    cascade: list[str]
    llm: list[str]
    target: float  # cascade median <= target x llm median


def tool(name: str) -> str | None:
    """The venv's own copy first (the interpreter running this script), then PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def write_state(tmp: Path, base_url: str) -> tuple[Path, Path]:
    config = tmp / "cascadeflow.toml"
    config.write_text(
        "[[models]]\n"
        'name = "mini"\n'
        'model = "openai/gpt-4o-mini"\n'
        f'api_base = "{base_url}"\n'
        "input_cost_per_million = 0.15\n"
        "output_cost_per_million = 0.60\n\n"
        "[cascade]\n"
        'models = ["mini"]\n',
        encoding="utf-8",
    )
    llm_dir = tmp / "llm"
    llm_dir.mkdir()
    (llm_dir / "extra-openai-models.yaml").write_text(
        "- model_id: replay-mini\n"
        "  model_name: gpt-4o-mini\n"
        f"  api_base: \"{base_url}\"\n",
        encoding="utf-8",
    )
    return config, llm_dir


def run(cmd: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one run; a failing command stops the benchmark."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[:300]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="measured runs per command (>= 7)")
    args = parser.parse_args()

    cascade = tool("cascade")
    llm = tool("llm")
    if cascade is None:
        raise SystemExit("error: the `cascade` command is not installed (pip install -e .)")
    if llm is None:
        print("hint: `llm` not found; pip install -e '.[bench]' (or pip install llm) "
              "to get the comparison column")

    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp_name:
        tmp = Path(tmp_name)
        env = {k: v for k, v in os.environ.items()
               if k not in ("CASCADE_CONFIG", "CASCADE_DB", "CASCADE_USER", "OPENAI_API_KEY")}
        env.update(HOME=str(tmp / "home"), XDG_CONFIG_HOME=str(tmp / "home" / ".config"),
                   XDG_DATA_HOME=str(tmp / "home" / ".local" / "share"))
        server, base_url = spawn(env=env)
        try:
            config, llm_dir = write_state(tmp, base_url)
            env.update(CASCADE_DB=str(tmp / "ledger.db"), LLM_USER_PATH=str(llm_dir))
            cfg = ["--config", str(config)]
            pairs = [
                Pair("--help", [cascade, "--help"], [str(llm), "--help"], 0.4),
                Pair("logs -n 1", [cascade, *cfg, "logs", "-n", "1"],
                     [str(llm), "logs", "-n", "1"], 0.4),
                Pair("ask", [cascade, *cfg, "ask", PROMPT],
                     [str(llm), "-m", "replay-mini", PROMPT], 1.1),
            ]
            for prompt in SEED_PROMPTS:  # some rows for both `logs`
                run([cascade, *cfg, "ask", prompt], env)
                if llm:
                    run([str(llm), "-m", "replay-mini", prompt], env)
            run([sys.executable, "-c", "pass"], env)
            floor = statistics.median(run([sys.executable, "-c", "pass"], env)
                                      for _ in range(args.runs))
            print(f"server {base_url}; {args.runs} runs each after 1 warm-up; wall-clock "
                  f"medians in ms; `python -c pass` = {floor * 1000:.0f} ms")
            if importlib.util.find_spec("pandas") is not None:
                print("note: pandas is installed here, and sqlite_utils (used by llm's "
                      "ledger) imports it, and numpy, at import time")
            print(f"{'command':<10} {'cascade':>8} {'llm':>8} {'ratio':>6} {'target':>7}  ok?")
            failed: list[str] = []
            for pair in pairs:
                ours: list[float] = []
                theirs: list[float] = []
                for i in range(args.runs + 1):
                    first_ours = i % 2 == 0  # alternate which one goes first
                    for is_ours in (first_ours, not first_ours):
                        if is_ours:
                            t = run(pair.cascade, env)
                            if i:
                                ours.append(t)
                        elif llm:
                            t = run(pair.llm, env)
                            if i:
                                theirs.append(t)
                ours_ms = statistics.median(ours) * 1000
                if not theirs:
                    print(f"{pair.name:<10} {ours_ms:8.0f} {'-':>8} {'-':>6} "
                          f"{'<=' + format(pair.target, 'g') + 'x':>7}  -")
                    continue
                theirs_ms = statistics.median(theirs) * 1000
                ratio = ours_ms / theirs_ms
                ok = ratio <= pair.target
                if not ok:
                    failed.append(pair.name)
                print(f"{pair.name:<10} {ours_ms:8.0f} {theirs_ms:8.0f} {ratio:6.2f} "
                      f"{'<=' + format(pair.target, 'g') + 'x':>7}  {'yes' if ok else 'NO'}")
        finally:
            server.terminate()
            server.wait(timeout=10)

    if not llm:
        print("verdict: no llm to compare against (cascade medians above)")
    elif failed:
        print(f"verdict: MISSED on {', '.join(failed)} (targets: help/logs <= 0.4x llm, "
              "ask <= 1.1x llm)")
    else:
        print("verdict: OK: all three within target (help/logs <= 0.4x llm, ask <= 1.1x llm)")


if __name__ == "__main__":
    main()
