"""Is a calibration fitted on shadow labels as good as one fitted on true labels? That is
what `cascade calibrate --from-ledger` relies on when users give no feedback.

5-fold cross-validation on recorded draft/verifier answers with ground truth: in each
fold the model is fitted on the training rows twice, once with the true labels and once
with the shadow labels (the draft agrees with the verifier's final answer, rows without a
verdict left out), and both are scored on the held-out rows against the TRUE labels.
Printed side by side with the rule validator's score.

    python bench/shadow_calibration.py ../shared/data/cascade/gsm8k_mixtral_gpt4_dev.jsonl

Needs the calibrated model (``cascadeflow_cli.quality.calibrate.calibrate_rows``).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any


def auroc(labels: list[bool], scores: list[float]) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 1
    from cascadeflow_cli.quality import QualityValidator
    from cascadeflow_cli.quality.agreement import agreement, answer_kind
    from cascadeflow_cli.quality.calibrate import calibrate_rows, row_features  # type: ignore[import-not-found]

    rules = QualityValidator("balanced")
    for name in argv:
        path = Path(name)
        domain = "code" if "mbpp" in path.name else "math"
        raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        rows: list[dict[str, Any]] = []
        for r in raw:
            kind = answer_kind(r["query"], domain, [r["draft_answer"], r["verifier_answer"]])
            shadow = agreement(r["draft_answer"], r["verifier_answer"], kind).verdict
            rows.append(
                {
                    "id": r["id"],
                    "query": r["query"],
                    "response": r["draft_answer"],
                    "domain": domain,
                    "correct": bool(r["draft_correct"]),
                    "verifier_correct": bool(r["verifier_correct"]),
                    "shadow": shadow,
                }
            )
        order = list(range(len(rows)))
        random.Random(0).shuffle(order)
        folds = [order[k::5] for k in range(5)]
        truth: list[bool] = []
        scores: dict[str, list[float]] = {"rules": [], "true labels": [], "shadow labels": []}
        for k, test in enumerate(folds):
            train = [i for j, f in enumerate(folds) if j != k for i in f]
            true_rows = [rows[i] for i in train]
            shadow_rows = [
                {**rows[i], "correct": rows[i]["shadow"]} for i in train if rows[i]["shadow"] is not None
            ]
            if len(shadow_rows) < 30:
                break
            fitted = {
                "true labels": calibrate_rows(true_rows).calibration,
                "shadow labels": calibrate_rows(shadow_rows).calibration,
            }
            for i in test:
                r = rows[i]
                truth.append(r["correct"])
                scores["rules"].append(rules.validate(r["query"], r["response"], domain=domain).score)
                features = row_features(r)
                for label, calibration in fitted.items():
                    scores[label].append(calibration.probability(features))
        covered = sum(r["shadow"] is not None for r in rows) / len(rows)
        if not truth:
            print(f"{path.name}: {len(rows)} rows, shadow verdicts on {covered:.0%}: too few to fit on")
            continue
        print(
            f"{path.name}: {len(rows)} rows, shadow verdicts on {covered:.0%}; "
            "held-out AUROC against the true labels"
        )
        for label, s in scores.items():
            print(f"  {label:14} {auroc(truth, s):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
