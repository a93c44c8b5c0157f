"""Cheap inputs beside the embedding for the domain head? Out-of-fold, nested, several partitions.

Issue 16's misses on the real-user file are mostly general prompts taken for code. Real
user prompts carry lexical cues ("write a function", code tokens, "$"), and the two dev
files label alike-looking text differently (the exam file's computer-science questions are
code; the real-user file's "code only when code is asked for"). Candidates here, each put
beside the shipped inputs (the embedding and the rules' features) with the whole settings
search of bench/train_domain_head.py (``choose``) run out-of-fold:

- ``char``, ``word``, ``both``: hashed n-grams (characters 3-5 of the whitespace-squeezed
  lower-cased text; words and word pairs; or both), log counts, unit length, DIM buckets
  (crc32, so a head could compute them at run time), times SCALES;
- ``asked``: "is code asked for", a binary logistic regression on the real-user rows only
  (code against the rest, the shipped inputs), stacked as one more input (its value for a
  training row from an inner fold that did not see it);
- ``ruhead``: a second head trained on the real-user (and written) rows only, its logits
  added to the joint head's with weight 0.5 (a convention-specific head).

Each line: accuracy on the two dev files with the settings chosen on all rows (as
train_domain_head --cv) and chosen nested (each fold's on the other folds), general's
recall on the real-user file, for each fold partition (``folds_of``'s salt). The nested
figure is the one to trust; one partition's moves by about as much as most candidates.

    python bench/domain_features.py [--salts '' a] [--designs shipped char:3 asked:1 ...]
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import sys
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import train_domain_head as train

from cascadeflow_cli.routing.domain import DOMAINS

DIM = 4096
DEFAULT_DESIGNS = ("shipped", "char:1", "char:3", "word:3", "both:3", "asked:1", "asked:10", "ruhead:0.5")
_TOKEN = re.compile(r"[a-z0-9_]+|[^\sa-z0-9_]")


def hashed_ngrams(texts: list[str], kind: str, dim: int = DIM) -> np.ndarray:
    """Per text, its n-grams' log counts in ``dim`` crc32 buckets, unit length (first MAX_CHARS)."""
    from cascadeflow_cli.routing.semantic import MAX_CHARS

    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, text in enumerate(texts):
        text = text[:MAX_CHARS].lower()
        grams: list[str] = []
        if kind in ("char", "both"):
            s = " " + re.sub(r"\s+", " ", text) + " "
            grams += [s[j:j + k] for k in (3, 4, 5) for j in range(len(s) - k + 1)]
        if kind in ("word", "both"):
            words = _TOKEN.findall(text)
            grams += [f"w:{w}" for w in words] + [f"b:{a} {b}" for a, b in itertools.pairwise(words)]
        if grams:
            counts = np.log1p(np.bincount([zlib.crc32(g.encode()) % dim for g in grams], minlength=dim))
            out[i] = counts / np.linalg.norm(counts)
    return out


def code_asked(x: np.ndarray, features: np.ndarray, labels: np.ndarray, real: np.ndarray,
               fold: np.ndarray, test: int) -> np.ndarray:
    """The "code asked for" logit of every row, from real-user rows outside fold ``test``: a
    training row's from an inner fit without its own fold too."""
    design = np.hstack([x, train.RULE_SCALE * features])
    target = (labels == DOMAINS.index("code")).astype(int)
    out = np.zeros(len(labels))
    for inner in np.unique(fold):
        keep = real & (fold != test) & (fold != inner if inner != test else True)
        coef, bias = train.fit(design[keep], target[keep], np.ones(int(keep.sum())), train.L2S[-1])
        z = design[fold == inner] @ coef.T + bias
        out[fold == inner] = z[:, 1] - z[:, 0]
    return out


def oof_of(design: str, x: np.ndarray, rows: list[dict[str, str]], features: np.ndarray,
           labels: np.ndarray, salt: str) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Per penalty, out-of-fold (head logits, nearest examples' log-vote) for one design."""
    kind, _, value = design.partition(":")
    scale = float(value or 1)
    files = np.array([r["file"] for r in rows])
    if kind == "shipped":
        return {l2: train.oof_logits(x, rows, features, l2, salt) for l2 in train.L2S}
    if kind in ("char", "word", "both"):  # train_head scales "features" by RULE_SCALE: undo it
        extra = hashed_ngrams([r["query"] for r in rows], kind) * (scale / train.RULE_SCALE)
        return {l2: train.oof_logits(x, rows, np.hstack([extra, features]), l2, salt) for l2 in train.L2S}
    fold = train.folds_of(rows, x, salt=salt)
    real = files != train.DEFAULT_FILES[0].name  # real-user and written rows
    out = {}
    for l2 in train.L2S:
        logits, knn = np.zeros((len(rows), len(DOMAINS))), np.zeros((len(rows), len(DOMAINS)))
        for f in range(train.FOLDS):
            keep, test = fold != f, fold == f
            inputs = features
            if kind == "asked":
                asked = code_asked(x, features, labels, real, fold, f)
                inputs = np.hstack([features, scale * asked[:, None]])
            head = train.train_head(x[keep], [r for r, k in zip(rows, keep, strict=True) if k],
                                    features=inputs[keep], l2=l2)
            logits[test] = train.head_logits(head, x[test], inputs[test])
            knn[test] = head.knn_log_probabilities(x[test])
            if kind == "ruhead":
                own = keep & real
                other = train.train_head(x[own], [r for r, k in zip(rows, own, strict=True) if k],
                                         features=features[own], l2=l2)
                logits[test] += scale * train.head_logits(other, x[test], features[test])
        out[l2] = (logits, knn)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--salts", nargs="+", default=["", "a"], help="fold partitions ('' as shipped)")
    parser.add_argument("--designs", nargs="+", default=list(DEFAULT_DESIGNS),
                        help="KIND[:SCALE], kinds: shipped char word both asked ruhead")
    args = parser.parse_args(argv)
    if not all(p.exists() for p in train.DEFAULT_FILES):
        print(f"{' or '.join(map(str, train.DEFAULT_FILES))}: not found", file=sys.stderr)
        return 1
    rows = train.load_rows([*train.DEFAULT_FILES, train.WRITTEN])
    m = train.dev_matrix(rows)
    x, labels, files, rules, sure, features, dev, general = (
        m.x, m.labels, m.files, m.rules, m.sure, m.features, m.dev, m.general)
    print(f"accuracy {' / '.join(dev)}, settings chosen on all rows | nested; general recall on {dev[1]}")
    for design in args.designs:
        for salt in args.salts:
            oof = oof_of(design, x, rows, features, labels, salt)
            fold = train.folds_of(rows, x, salt=salt)
            scored = train.plain_and_nested(oof, rules, sure, labels, files, fold)
            cells = scored.cells(labels, files, dev, general)
            print(f"  {design:<12} salt {salt!r:<4} {cells[0]}  |  nested {cells[1]}", flush=True)
    print(f"\nload average {' '.join(f'{v:.1f}' for v in os.getloadavg())}, {time.process_time():.0f} s CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
