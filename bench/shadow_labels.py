"""How good are shadow labels? On recorded draft/verifier answers with ground-truth labels,
compare the label shadow verification would record (the draft agrees with the verifier's
final answer, quality/agreement.py) with the draft's real correctness, side by side with
the trivial baseline (every draft labelled good) and the oracle.

    python bench/shadow_labels.py ../shared/data/cascade/gsm8k_mixtral_gpt4_dev.jsonl \
        ../shared/data/cascade/mbpp_mixtral_gpt4_dev.jsonl

Rows: ``{"query", "draft_answer", "draft_correct", "verifier_answer", "verifier_correct"}``.
Nothing is fitted here: the agreement rules are fixed, so there is nothing to overfit.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def evaluate(path: Path) -> dict[str, float]:
    from cascadeflow_cli.quality.agreement import agreement, answer_kind

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    domain = "code" if "mbpp" in path.name else "math"
    tp = fp = tn = fn = 0
    labelled = labelled_right = 0
    started = time.perf_counter()
    for r in rows:
        draft, verifier = r["draft_answer"], r["verifier_answer"]
        kind = answer_kind(r["query"], domain, [draft, verifier])
        verdict = agreement(draft, verifier, kind)
        label = verdict.agree
        truth = bool(r["draft_correct"])
        if verdict.verdict is not None:  # what shadow verification records as the label
            labelled += 1
            labelled_right += verdict.verdict == truth
        tp += label and truth
        fp += label and not truth
        tn += (not label) and (not truth)
        fn += (not label) and truth
    ms = (time.perf_counter() - started) * 1000 / max(1, len(rows))
    n = len(rows)
    good = tp + fn
    return {
        "rows": n,
        "draft_accuracy": good / n,
        "label_accuracy": (tp + tn) / n,
        "baseline_accuracy": good / n,  # every draft labelled good
        "precision_good": tp / (tp + fp) if tp + fp else float("nan"),
        "recall_good": tp / good if good else float("nan"),
        "recall_bad": tn / (tn + fp) if tn + fp else float("nan"),
        "ms_per_label": ms,
        "coverage": labelled / n,
        "verdict_accuracy": labelled_right / labelled if labelled else float("nan"),
    }


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 1
    print("agree = the draft's final answer matches the verifier's; verdict = the label recorded")
    print("(agree -> good; disagree -> bad only where a disagreement makes the draft wrong)")
    print(
        f"{'file':32} {'rows':>5} {'agree acc':>9} {'all-good':>9} {'oracle':>7} {'prec good':>9} "
        f"{'rec good':>8} {'rec bad':>8} {'coverage':>8} {'verdict acc':>11} {'ms/label':>8}"
    )
    for name in argv:
        m = evaluate(Path(name))
        print(
            f"{Path(name).name:32} {m['rows']:5d} {m['label_accuracy']:9.3f} {m['baseline_accuracy']:9.3f} "
            f"{1.0:7.3f} {m['precision_good']:9.3f} {m['recall_good']:8.3f} {m['recall_bad']:8.3f} "
            f"{m['coverage']:8.3f} {m['verdict_accuracy']:11.3f} {m['ms_per_label']:8.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
