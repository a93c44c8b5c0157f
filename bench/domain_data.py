"""More training data for the domain head? Extra rows trained on in every fold, never scored.

The head trained on the two dev files plus bench/data/domain_written.jsonl; its real-user
misses were mostly general prompts taken for code. This script adds the rows of extra files
(default bench/data/domain_chat.jsonl: prompts written for the project in the style of a public
chatbot's users; by default only the classes train.CHAT_DOMAINS ships, ``--domains all`` for
every class) to the TRAINING side of every fold of
train_domain_head's cross-validation: the scored rows are the dev files' (and the written
file's 72 as shipped, never scored), so every figure is on dev rows no extra row is.
An extra row whose embedding is within NEAR (cosine) of a scored row of the held-out fold is
left out of that fold's training (a copy of a test row would be a leak; the count is printed).

Per design (``none``: the shipped data; ``chat:W``: the extra files, their total weight W
times a dev file's, see train_domain_head.row_weights; ``fit:W``: in the fit only, not among the
nearest examples that vote; ``vote:W``: among those only) and fold partition (salt), with the
whole settings search (``choose``): accuracy on the two dev files with the settings chosen
on all scored rows | chosen nested (each fold's on the other folds: the figure to trust),
general's recall on the real-user file; then each dev file trained on the other (plus the
written and extra rows) with the settings chosen on all rows.

The head ships with the design chosen here (train.CHAT, CHAT_DOMAINS, CHAT_WEIGHT: the default
designs are ``none`` and that one); the fold training is train.train_with_extra, shared with it.

    python bench/domain_data.py [--salts '' a b] [--designs none chat:0.5 chat:1] [--domains all]
                                [--without DOMAIN ...] [--extra FILE ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

# one BLAS thread: on 2 loaded cores OpenBLAS's pool busy-waits between the many small products
# here (a design and partition took ~14 min at load 13 with it, ~1 min without)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import train_domain_head as train

from cascadeflow_cli.routing.domain import DOMAINS

DEFAULT_DESIGNS = ("none", f"chat:{train.CHAT_WEIGHT}")  # the shipped data before and now


def oof_with_extra(x: np.ndarray, rows: list[dict[str, str]], features: np.ndarray, extra: train.Extra,
                   l2: float, salt: str, vote: bool | str = True
                   ) -> tuple[tuple[np.ndarray, np.ndarray], int]:
    """Out-of-fold (head logits, nearest examples' log-vote) of the scored rows, each fold's head
    trained on the other folds plus the extra rows (those not near a held-out row: the same
    train.train_with_extra the shipped head's cross-validation uses); and how many extra rows
    were left out that way, summed over folds."""
    heads, fold, dropped = train.out_of_fold_heads(x, rows, features, l2, salt, extra, vote)
    logits, knn = np.zeros((len(rows), len(DOMAINS))), np.zeros((len(rows), len(DOMAINS)))
    for f, head in enumerate(heads):
        test = fold == f
        logits[test] = train.head_logits(head, x[test], features[test])
        knn[test] = head.knn_log_probabilities(x[test])
    return (logits, knn), dropped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--salts", nargs="+", default=["", "a", "b"], help="fold partitions ('' as shipped)")
    parser.add_argument("--designs", nargs="+", default=list(DEFAULT_DESIGNS),
                        help="none | chat:W | fit:W (not in the vote) | vote:W (only there)")
    parser.add_argument("--recalls", action="store_true", help="per-class recall (nested) too")
    parser.add_argument("--domains", nargs="+", default=list(train.CHAT_DOMAINS),
                        help="the extra rows' classes to train on (default: the shipped design's; 'all')")
    parser.add_argument("--without", nargs="*", default=[], help="leave out the extra rows of these domains")
    parser.add_argument("--extra", type=Path, nargs="+", default=[train.CHAT])
    args = parser.parse_args(argv)
    missing = [p for p in [*train.DEFAULT_FILES, *args.extra] if not p.exists()]
    if missing:
        print(f"{missing[0]}: not found", file=sys.stderr)
        return 1
    rows = train.load_rows([*train.DEFAULT_FILES, train.WRITTEN])
    domains = set(DOMAINS if "all" in args.domains else args.domains) - set(args.without)
    extra = train.chat_extra(paths=tuple(args.extra), domains=tuple(d for d in DOMAINS if d in domains))
    m = train.dev_matrix(rows)
    x, labels, files, rules, sure, features, dev, general = (
        m.x, m.labels, m.files, m.rules, m.sure, m.features, m.dev, m.general)
    counts = {d: sum(r["domain"] == d for r in extra.rows) for d in DOMAINS}
    print(f"{len(extra.rows)} extra rows ({', '.join(f'{d} {n}' for d, n in counts.items())})")
    print(f"accuracy {' / '.join(dev)}, settings chosen on all rows | nested; general recall on {dev[1]}")
    for design in args.designs:
        kind, _, value = design.partition(":")
        weight = float(value or 1) if kind in ("chat", "fit", "vote") else 0.0
        vote: bool | str = "only" if kind == "vote" else kind != "fit"
        for salt in args.salts:
            oof, dropped = {}, 0
            for l2 in train.L2S:
                oof[l2], dropped = oof_with_extra(x, rows, features, replace(extra, weight=weight), l2, salt,
                                                  vote)
            fold = train.folds_of(rows, x, salt=salt)
            scored = train.plain_and_nested(oof, rules, sure, labels, files, fold)
            chosen, nprobs, deep = scored.chosen, scored.deep_probs, scored.deep
            cells = scored.cells(labels, files, dev, general)
            at90 = []
            for f in dev:
                m = (files == f) & (nprobs.max(axis=1) >= 0.9)
                at90.append(f"{np.mean(deep[m] == labels[m]):.3f}")
            print(f"  {design:<10} salt {salt!r:<4} {cells[0]}  |  nested {cells[1]}  @0.9 {' / '.join(at90)}"
                  f"  (extra left out {dropped}; {chosen.l2:g} knn {chosen.knn_weight} w {chosen.weight})",
                  flush=True)
            if args.recalls:
                for f in dev:
                    m = files == f
                    print(f"      nested recall {f}: " + ", ".join(
                        f"{d} {np.mean(deep[m & (labels == k)] == k):.2f}" for k, d in enumerate(DOMAINS)
                        if (m & (labels == k)).any()))
        cross = []  # each dev file from the other (plus the written and the extra rows)
        for f in dev:
            test = files == f
            head, _ = train.train_with_extra(x, rows, features, ~test, replace(extra, weight=weight),
                                             chosen.l2, vote)
            other = (train.head_logits(head, x[test], features[test])
                     + chosen.knn_weight * head.knn_log_probabilities(x[test]))
            p = train.pipeline(other, rules[test], sure[test], chosen)
            pred = train.decided(p, sure[test], chosen)
            right = pred == labels[test]
            g = labels[test] == DOMAINS.index("general")
            cross.append(f"{f} {np.mean(right):.3f} (general {np.mean(right[g]):.2f})")
        print(f"  {design:<10} trained on the other file: {'; '.join(cross)}", flush=True)
    print(f"\nload average {' '.join(f'{v:.1f}' for v in os.getloadavg())}, {time.process_time():.0f} s CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
