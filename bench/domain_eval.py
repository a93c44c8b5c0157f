"""Accuracy of domain detection on labelled queries, beside the seed's keyword detector.

Data: /work/shared/data/domains/domain_dev.jsonl (1,200 queries, 200 per domain: code,
math, medical, legal, finance, general; MMLU, GSM8K, HumanEval, PubMedQA, CLINC150 and
LegalBench texts). Reported per detector: accuracy, macro-F1, per-domain precision and
recall, the confusion matrix, calibration (accuracy by confidence band) and the time per
query.

The seed (SEED.md 4.1): substring counts over three keyword lists (code, medical, legal),
confidence min(0.9, matches / 5), "general" below 0.7 (it has no math or finance).

With --semantic, the semantic detector's figures are out-of-fold: every row of the head's
training files is classified by a head trained without its fold (bench/train_domain_head.py,
5 folds over both files and the written questions; the gate, rules weight and
temperatures as shipped: chosen out-of-fold, they are two or three numbers fitted on all rows).

    python bench/domain_eval.py [--data JSONL ...] [--semantic]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

DEFAULT_DATA = [Path("/work/shared/data/domains/domain_dev.jsonl"),
                Path("/work/shared/data/domains/domain_realuser_dev.jsonl")]
DOMAINS = ("code", "math", "medical", "legal", "finance", "general")
BANDS = ((0.0, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.01))

SEED_CODE = ['function', 'class', 'method', 'variable', 'implement', 'algorithm', 'code', 'programming',
             'debug', 'error', 'syntax', 'compile', 'runtime', 'api', 'library']
SEED_MEDICAL = ['diagnosis', 'treatment', 'patient', 'symptom', 'disease', 'medication', 'doctor',
                'hospital', 'medical', 'health', 'clinical', 'therapy', 'prescription']
SEED_LEGAL = ['contract', 'law', 'legal', 'court', 'judge', 'attorney', 'plaintiff', 'defendant',
              'liability', 'statute', 'regulation']


def seed_detect(query: str) -> tuple[str, float]:
    """SEED.md 4.1, as written (substring matching, ties to code)."""
    q = query.lower()
    counts = {d: sum(1 for kw in kws if kw in q)
              for d, kws in (("code", SEED_CODE), ("medical", SEED_MEDICAL), ("legal", SEED_LEGAL))}
    best = max(counts.values())
    if best == 0:
        return "general", 0.5
    domain = next(d for d in ("code", "medical", "legal") if counts[d] == best)
    confidence = min(0.9, best / 5)
    return (domain, confidence) if confidence >= 0.7 else ("general", 0.5)


def ours(min_confidence: float = 0.0) -> Callable[[str], tuple[str, float]]:
    """The rules; with ``min_confidence`` (routing.domain.MIN_CONFIDENCE) as `cascade domain`
    and the cascade route: a domain the rules are less sure of counts as general."""
    from cascadeflow_cli.routing import DomainDetector

    detector = DomainDetector(min_confidence=min_confidence)

    def detect(query: str) -> tuple[str, float]:
        result = detector.detect(query)
        return result.domain, result.confidence

    return detect


def out_of_fold(rows: list[dict[str, str]]) -> Callable[[str], tuple[str, float]]:
    """The semantic detector with, for each training row, the head of the fold without it."""
    from dataclasses import replace

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import numpy as np
    import train_domain_head as train

    from cascadeflow_cli.routing.head import DomainHead, head_path
    from cascadeflow_cli.routing.semantic import SemanticDomainDetector

    shipped = DomainHead.load()
    training = train.load_rows([*(p for p in train.DEFAULT_FILES if p.exists()), train.WRITTEN])
    features = train.rule_matrix(training)[2] if shipped.rule_coef is not None else None
    with np.load(head_path(), allow_pickle=False) as data:  # the penalty the shipped head was fitted with
        meta = json.loads(str(data["meta"]))
    l2 = float(meta.get("l2", train.L2S[-1]))
    # the shipped design: the chat-style extra rows in every training fold (never scored), as trained
    extra = train.chat_extra(features is not None) if "extra" in meta else None
    heads, folds, _ = train.out_of_fold_heads(train.embed_rows(training), training, features, l2, extra=extra)
    settings = {"temperature": shipped.temperature, "rules_weight": shipped.rules_weight,
                "rules_temperature": shipped.rules_temperature, "rules_sure": shipped.rules_sure,
                "knn_weight": shipped.knn_weight, "general_below": shipped.general_below}
    detectors = [SemanticDomainDetector(head=replace(h, **settings)) for h in heads]
    fold_of = {r["query"]: int(f) for r, f in zip(training, folds, strict=True)}
    plain = SemanticDomainDetector(head=shipped)

    def detect(query: str) -> tuple[str, float]:
        fold = fold_of.get(query)
        result = (plain if fold is None else detectors[fold]).detect(query)
        return result.domain, result.confidence

    return detect


def evaluate(name: str, detect: Callable[[str], tuple[str, float]], rows: list[dict[str, str]]) -> None:
    start, cpu = time.perf_counter(), time.process_time()
    predictions, cpu_times = [], []
    for r in rows:
        before = time.process_time()
        predictions.append(detect(r["query"]))
        cpu_times.append(time.process_time() - before)
    per_query = (time.perf_counter() - start) / len(rows)
    cpu_per_query = (time.process_time() - cpu) / len(rows)  # less distorted by a loaded machine
    cpu_median = sorted(cpu_times)[len(cpu_times) // 2]
    truth = [r["domain"] for r in rows]
    correct = sum(p == t for (p, _), t in zip(predictions, truth, strict=True))
    confusion = Counter((t, p) for (p, _), t in zip(predictions, truth, strict=True))
    f1s = []
    print(f"\n{name}: accuracy {correct / len(rows):.3f}, ", end="")
    lines = []
    for d in DOMAINS:
        tp = confusion[(d, d)]
        predicted = sum(confusion[(t, d)] for t in DOMAINS)
        actual = sum(confusion[(d, p)] for p in DOMAINS)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        f1s.append(f1)
        row = " ".join(f"{confusion[(d, p)]:>5}" for p in DOMAINS)
        lines.append(f"  {d:<8} P {precision:.2f} R {recall:.2f} F1 {f1:.2f} n {actual:>3}  {row}")
    print(f"macro-F1 {sum(f1s) / len(f1s):.3f}, {per_query * 1e6:,.0f} us per query "
          f"({cpu_per_query * 1e6:,.0f} us CPU, median {cpu_median * 1e6:,.0f} us)")
    header = " ".join(f"{p[:5]:>5}" for p in DOMAINS)
    print(f"  {'':<8} {'':<22}   {header}  (rows: truth, columns: predicted)")
    print("\n".join(lines))
    bands = []
    for lo, hi in BANDS:
        inside = [(p, t) for (p, c), t in zip(predictions, truth, strict=True) if lo <= c < hi]
        if inside:
            accuracy = sum(p == t for p, t in inside) / len(inside)
            bands.append(f"[{lo:.1f}, {min(hi, 1.0):.1f}): {accuracy:.2f} of {len(inside)}")
    print("  calibration (accuracy by confidence): " + "; ".join(bands))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, nargs="+", default=DEFAULT_DATA)
    parser.add_argument("--semantic", action="store_true",
                        help="also the semantic detector (the [semantic] extra)")
    args = parser.parse_args(argv)
    missing = [p for p in args.data if not p.exists()]
    if missing:
        print(f"{missing[0]}: not found", file=sys.stderr)
        return 1
    from cascadeflow_cli.routing.domain import MIN_CONFIDENCE

    semantic = out_of_fold([]) if args.semantic else None
    for path in args.data:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
        print(f"\n=== {path.name}: {len(rows)} queries, " + ", ".join(
            f"{d} {n}" for d, n in sorted(Counter(r['domain'] for r in rows).items())))
        evaluate("seed keywords", seed_detect, rows)
        evaluate("ours (rules)", ours(), rows)
        evaluate(f"ours (rules as routed: below {MIN_CONFIDENCE} general)", ours(MIN_CONFIDENCE), rows)
        if semantic is not None:
            evaluate("ours (semantic, out-of-fold)", semantic, rows)
    print(f"\nload average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
