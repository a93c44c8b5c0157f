"""Per-request overhead of the cascade pipeline over a bare call to the same server.

In-process, against a local ReplayServer (loopback HTTP, no added latency). Modes:

* ``bare``      -- ``provider.complete_once(model, ChatRequest(...))``, one HTTP call;
* ``cascade-1`` -- ``Cascade.run`` with a single-model chain;
* ``cascade-2`` -- ``Cascade.run`` with a two-model chain whose draft is accepted (one call).

Both cascade modes pay chain resolution, price lookup, the retry wrapper, validation and
a ledger transaction in a real SQLite file (temp dir). All modes share one provider
instance, so one pooled httpx client. The modes run in a shuffled order each round, so
machine noise hits all of them. Target: overhead <= 5 ms median.

    python bench/overhead.py [--requests 300] [--repeats 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from cascadeflow_cli.config import AppConfig, CascadeConfig, LedgerConfig, ModelConfig
from cascadeflow_cli.engine.cascade import Cascade
from cascadeflow_cli.engine.providers import provider_for
from cascadeflow_cli.engine.providers.base import ChatRequest
from cascadeflow_cli.engine.providers.openai_compat import OpenAICompatProvider
from cascadeflow_cli.ledger.db import Ledger, open_ledger
from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer

TARGET_MS = 5.0
QUERY = "What is the capital of France, and why did it become the capital?"
ANSWER = (
    "Paris is the capital of France. It grew into the capital because the Capetian kings "
    "ruled from the city from the tenth century on, and its central position on the Seine "
    "made it the natural hub of trade, roads and royal administration."
)
MAX_TOKENS = CascadeConfig().max_tokens  # what the cascade asks for by default


def make_config(base_url: str) -> AppConfig:
    def model(name: str, wire: str, inp: str, out: str) -> ModelConfig:
        return ModelConfig(name=name, model=f"openai/{wire}", api_base=base_url,
                           input_cost_per_million=Decimal(inp),
                           output_cost_per_million=Decimal(out))

    models = {"mini": model("mini", "gpt-4o-mini", "0.15", "0.60"),
              "big": model("big", "gpt-4o", "2.50", "10.00")}
    return AppConfig(models=models, cascade=CascadeConfig(models=("mini", "big")),
                     ledger=LedgerConfig())


def make_modes(config: AppConfig, ledger: Ledger) -> dict[str, Callable[[], object]]:
    mini = config.models["mini"]
    provider = provider_for(mini)  # the same cached instance the cascade uses
    assert isinstance(provider, OpenAICompatProvider)
    cascade = Cascade(config, ledger)
    request = ChatRequest([{"role": "user", "content": QUERY}], MAX_TOKENS)

    def bare() -> object:
        return provider.complete_once(mini, request)

    def single() -> object:
        return cascade.run(QUERY, models=["mini"])

    def accepted() -> object:
        result = cascade.run(QUERY, models=["mini", "big"])
        assert result.draft_accepted and not result.escalated, "draft should be accepted"
        return result

    return {"bare": bare, "cascade-1": single, "cascade-2": accepted}


def measure(modes: dict[str, Callable[[], object]], requests: int, warmup: int,
            rng: random.Random) -> dict[str, list[float]]:
    """Milliseconds per call, per mode; each round runs every mode once, shuffled."""
    times: dict[str, list[float]] = {name: [] for name in modes}
    order = list(modes)
    for i in range(warmup + requests):
        rng.shuffle(order)
        for name in order:
            start = time.perf_counter_ns()
            modes[name]()
            elapsed = (time.perf_counter_ns() - start) / 1e6
            if i >= warmup:
                times[name].append(elapsed)
    return times


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def profile(fn: Callable[[], object], runs: int, top: int) -> str:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(runs):
        fn()
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--requests", type=int, default=300,
                        help="measured calls per mode and repeat")
    parser.add_argument("--warmup", type=int, default=30, help="unmeasured rounds first")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile the cascade-2 mode and print the top costs")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp, \
            ReplayServer(default=ModelBehavior(answer=ANSWER)) as server:
        config = make_config(server.base_url)
        with open_ledger(Path(tmp) / "ledger.db") as ledger:
            modes = make_modes(config, ledger)
            print(f"server {server.base_url}; {args.repeats} repeats x {args.requests} calls "
                  f"per mode (after {args.warmup} warm-up rounds); times in ms")
            print(f"{'repeat':>6}  {'mode':<10} {'median':>8} {'p90':>8} {'overhead':>9} "
                  f"{'paired':>8}")
            overheads: dict[str, list[float]] = {"cascade-1": [], "cascade-2": []}
            for rep in range(1, args.repeats + 1):
                times = measure(modes, args.requests, args.warmup, rng)
                base = statistics.median(times["bare"])
                for name, values in times.items():
                    med = statistics.median(values)
                    if name == "bare":
                        print(f"{rep:>6}  {name:<10} {med:8.3f} {p90(values):8.3f}")
                        continue
                    # the median of per-round differences, less sensitive to drift
                    paired = statistics.median(v - b for v, b in zip(values, times["bare"],
                                                                     strict=True))
                    overheads[name].append(med - base)
                    print(f"{rep:>6}  {name:<10} {med:8.3f} {p90(values):8.3f} "
                          f"{med - base:9.3f} {paired:8.3f}")
            rows = ledger.db.execute("select count(*) from requests").fetchone()[0]
            print(f"ledger rows written: {rows}")
            if args.profile:
                print(profile(modes["cascade-2"], args.requests, 25))

    summary = {name: statistics.median(vals) for name, vals in overheads.items()}
    worst = max(summary.values())
    verdict = "OK" if worst <= TARGET_MS else "MISSED"
    print(f"verdict: {verdict}: median overhead over bare call "
          + ", ".join(f"{name} {ms:.3f} ms" for name, ms in summary.items())
          + f" (median of {args.repeats} repeats; target <= {TARGET_MS:g} ms)")


if __name__ == "__main__":
    main()
