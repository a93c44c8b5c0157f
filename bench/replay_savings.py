"""Savings and quality of the default cascade on the GSM8K replay (the baseline to beat).

Every row goes through the real Cascade (default settings: quality preset "balanced")
over real HTTP to a ReplayServer serving both models' recorded answers, with a real
ledger in a temp file. Sequentially: it takes seconds, and one Ledger shared by threads
is not safe (the budget gate reads it outside its lock). Token usage is the server's
default, ceil(chars / 4), priced as the data README says: draft $0.60 per million
tokens in and out, verifier $10 in / $30 out. A final answer is correct when it is the
accepted draft and draft_correct, or the verifier's answer and verifier_correct.
Compared with draft-only, verifier-only, random escalation at the cascade's escalation
rate (mean over --seeds seeds, offline from the labels) and the oracle (escalate
exactly the wrong drafts).

    python bench/replay_savings.py [--data PATH] [--seeds 200]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from cascadeflow_cli.config import AppConfig, CascadeConfig, ModelConfig
from cascadeflow_cli.engine.cascade import Cascade, CascadeResult
from cascadeflow_cli.engine.pricing import Price, Usage, cost_nanos
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.money import NANOS_PER_USD
from cascadeflow_cli.replay.server import ReplayServer, load_recordings

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "cascade" / "gsm8k_mixtral_gpt4_dev.jsonl"
DRAFT_PRICE = Price(Decimal("0.60"), Decimal("0.60"))
VERIFIER_PRICE = Price(Decimal("10"), Decimal("30"))


@dataclass(frozen=True)
class Row:
    query: str
    draft_correct: bool
    verifier_correct: bool
    draft_nusd: int  # what each model's recorded answer costs, offline
    verifier_nusd: int


@dataclass(frozen=True)
class Outcome:
    name: str
    escalation_rate: float
    quality: float
    cost_nusd: float


def tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def load_rows(path: Path) -> list[Row]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                r = json.loads(line)
                rows.append(Row(
                    r["query"], bool(r["draft_correct"]), bool(r["verifier_correct"]),
                    cost_nanos(DRAFT_PRICE, Usage(tokens(r["query"]), tokens(r["draft_answer"]))),
                    cost_nanos(VERIFIER_PRICE,
                               Usage(tokens(r["query"]), tokens(r["verifier_answer"]))),
                ))
    return rows


def make_config(base_url: str, draft_id: str, verifier_id: str) -> AppConfig:
    def model(name: str, wire: str, price: Price) -> ModelConfig:
        return ModelConfig(name=name, model=f"openai/{wire}", api_base=base_url,
                           input_cost_per_million=price.input_per_million,
                           output_cost_per_million=price.output_per_million)

    return AppConfig(models={"draft": model("draft", draft_id, DRAFT_PRICE),
                             "verifier": model("verifier", verifier_id, VERIFIER_PRICE)},
                     cascade=CascadeConfig(models=("draft", "verifier")))


def outcome(name: str, rows: list[Row], escalate: list[bool]) -> Outcome:
    """A cascade that always drafts and escalates the rows flagged in ``escalate``."""
    correct = sum(r.verifier_correct if e else r.draft_correct for r, e in zip(rows, escalate,
                                                                              strict=True))
    cost = sum(r.draft_nusd + (r.verifier_nusd if e else 0) for r, e in zip(rows, escalate,
                                                                            strict=True))
    return Outcome(name, sum(escalate) / len(rows), correct / len(rows), cost)


def random_escalation(rows: list[Row], k: int, seeds: int) -> Outcome:
    runs = []
    for seed in range(seeds):
        chosen = set(random.Random(seed).sample(range(len(rows)), k))
        runs.append(outcome("random", rows, [i in chosen for i in range(len(rows))]))
    return Outcome(f"random escalation ({seeds} seeds)", k / len(rows),
                   statistics.fmean(o.quality for o in runs),
                   statistics.fmean(o.cost_nusd for o in runs))


def roc_auc(scores: list[float], labels: list[bool]) -> float:
    """P(score of a correct draft > score of a wrong one), ties counting half."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="GSM8K replay JSONL")
    parser.add_argument("--seeds", type=int, default=200, help="seeds for random escalation")
    args = parser.parse_args()
    if not args.data.is_file():
        sys.exit(f"error: data file not found: {args.data} (pass --data PATH)")

    rows = load_rows(args.data)
    recordings = load_recordings(args.data)
    with open(args.data, encoding="utf-8") as fh:
        raw = [json.loads(line) for line in fh if line.strip()]
    first = raw[0]
    answers = [(r["draft_answer"], r["verifier_answer"]) for r in raw]
    with tempfile.TemporaryDirectory(prefix="bench-savings-") as tmp, \
            ReplayServer(recordings) as server, open_ledger(Path(tmp) / "ledger.db") as ledger:
        cascade = Cascade(make_config(server.base_url, first["draft_model"],
                                      first["verifier_model"]), ledger)
        started = time.perf_counter()
        results: list[CascadeResult] = [cascade.run(r.query, "bench") for r in rows]
        elapsed = time.perf_counter() - started
        ledger_rows = ledger.db.execute("select count(*) from requests").fetchone()[0]

    escalated = [r.escalated for r in results]
    assert all(r.draft_accepted != r.escalated for r in results)
    real = outcome("cascade (balanced)", rows, escalated)
    reported_cost = sum(r.cost_nusd for r in results)
    reported_alone = sum(r.verifier_only_cost_nusd for r in results)
    verifier_alone = sum(r.verifier_nusd for r in rows)
    outcomes = [
        real,
        outcome("draft only", rows, [False] * len(rows)),
        Outcome("verifier only", 1.0, sum(r.verifier_correct for r in rows) / len(rows),
                verifier_alone),
        random_escalation(rows, sum(escalated), args.seeds),
        outcome("oracle", rows, [not r.draft_correct for r in rows]),
    ]

    print(f"{len(rows)} rows from {args.data}; {elapsed:.1f} s; "
          f"{ledger_rows} ledger rows")
    print(f"{'strategy':<30} {'accept':>7} {'quality':>8} {'cost $':>9} {'savings':>8}")
    for o in outcomes:
        print(f"{o.name:<30} {1 - o.escalation_rate:7.1%} {o.quality:8.1%} "
              f"{o.cost_nusd / NANOS_PER_USD:9.4f} {1 - o.cost_nusd / verifier_alone:8.1%}")
    print(f"strong model alone: ${verifier_alone / NANOS_PER_USD:.4f} (recorded answers); the "
          f"cascade's own verifier_only_cost sums to ${reported_alone / NANOS_PER_USD:.4f} "
          "(it prices accepted drafts' token counts at the verifier's rates)")
    served = {True: 0, False: 0}
    for res, rec in zip(results, answers, strict=True):
        served[res.answer == rec[1 if res.escalated else 0]] += 1
    print(f"checks: cascade cost ${reported_cost / NANOS_PER_USD:.4f} "
          f"{'==' if reported_cost == real.cost_nusd else '!='} offline cost; "
          f"{served[True]}/{len(rows)} final answers are the recorded ones")

    draft_scores = [r.calls[0].quality_score or 0.0 for r in results]
    labels = [r.draft_correct for r in rows]
    accepted = [(r, res) for r, res in zip(rows, results, strict=True) if res.draft_accepted]
    wrong = [r for r in rows if not r.draft_correct]
    caught = sum(res.escalated for r, res in zip(rows, results, strict=True) if not r.draft_correct)
    print(f"validator: ROC AUC of draft score vs draft_correct = {roc_auc(draft_scores, labels):.3f}; "
          f"accepted drafts correct {sum(r.draft_correct for r, _ in accepted)}/{len(accepted)}; "
          f"wrong drafts escalated {caught}/{len(wrong)}")
    reasons = Counter(reason.split(":", 1)[0] for r in results if r.escalated
                      for reason in r.calls[0].quality_reasons)
    print("checks behind escalations: "
          + ", ".join(f"{name} {count}" for name, count in reasons.most_common()))
    gap = outcomes[-1].quality - real.quality
    print(f"verdict: baseline quality {real.quality:.1%} at {1 - real.cost_nusd / verifier_alone:.1%} "
          f"savings vs verifier-only {outcomes[2].quality:.1%}; random escalation at the same "
          f"rate {outcomes[3].quality:.1%}; oracle {outcomes[-1].quality:.1%} "
          f"({gap:.1%} above the cascade)")


if __name__ == "__main__":
    main()
