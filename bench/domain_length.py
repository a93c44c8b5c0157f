"""Long queries: does the domain head gain from reading past the model's first 128 tokens?

The Embedder read a query's first 128 tokens (its tokenizer truncated there; 256 since
domains-16/17, semantic.MAX_TOKENS). On the
real-user dev file 78 of 487 rows are longer (a pasted stack trace, or the request itself,
often comes after); on the exam-style file 169 of 1,200. Each candidate view below changes
the vector of those long rows only (a query of <= 128 tokens gets the shipped vector, bit for
bit); the head is retrained on the view for every row (the dev files, the written questions
and the shipped chat rows) and the whole settings search of train_domain_head (``choose``) run
plain and nested per fold partition, the folds those of the shipped vectors (the same
partition for every view). Printed: accuracy per dev file plain | nested, general's recall on
the real-user file, and the nested accuracy per token-length bucket (<= 128, 129-256, > 256).

Views (unit length; windows are 126 tokens between [CLS] and [SEP], as the model reads them):
``first`` (shipped: since semantic.MAX_TOKENS became 256, the first 256 tokens), ``firstlast``
(the mean of the first and last windows' unit vectors), ``all:N`` (the mean over the first N
non-overlapping windows, the last window always in), ``tN`` (the first N tokens in one run,
[CLS] and [SEP] included: ``t128`` the vectors shipped before, ``t256`` the shipped ones),
``headtail:H`` (one run of the first H tokens and the last 126 - H), ``htN:H`` (the same in
N tokens: a row of at most N as ``tN``), ``wlast:W`` (the first
window's unit vector plus W times the last's).

    OPENBLAS_NUM_THREADS=1 python bench/domain_length.py [--salts '' a b] [--views first firstlast ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see bench/domain_data.py

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import train_domain_head as train

from cascadeflow_cli.routing.domain import DOMAINS

WINDOW = 126  # content tokens a run: 128 with [CLS] and [SEP]
BUCKETS = ((0, 128), (129, 256), (257, 10**9))


class Windows:
    """Token windows of a text through the shipped Embedder's model (its session, its tokenizer
    without truncation)."""

    def __init__(self) -> None:
        from tokenizers import Tokenizer

        from cascadeflow_cli.routing.semantic import shared_embedder

        self.embedder = shared_embedder()
        self.tokenizer = Tokenizer.from_file(str(self.embedder.directory / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.cls, self.sep = self.tokenizer.token_to_id("[CLS]"), self.tokenizer.token_to_id("[SEP]")

    def tokens(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def vector(self, content: list[int]) -> np.ndarray:
        ids = np.array([[self.cls, *content, self.sep]], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        states = self.embedder.session.run(None, {k: v for k, v in feed.items() if k in self.embedder.inputs})
        mean = states[0][0].sum(axis=0, dtype=np.float64) / ids.shape[1]
        return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)

    def view(self, text: str, name: str) -> np.ndarray:
        ids = self.tokens(text)
        if name.startswith("t") and name[1:].isdigit():  # the first N tokens in one run
            return self.vector(ids[: int(name[1:]) - 2])
        if name.startswith("ht"):  # htN:H: one run of N tokens, the first H and the last N - 2 - H
            size, head = (int(v) for v in name[2:].split(":"))
            tail = len(ids) - (size - 2 - head)
            return self.vector(ids if len(ids) <= size - 2 else ids[:head] + ids[tail:])
        if name.startswith("headtail:"):  # one run: the first H tokens and the last 126 - H
            head = int(name.split(":")[1])
            return self.vector(ids[:head] + ids[-(WINDOW - head):])
        if name.startswith("wlast:"):  # the first window's vector plus W times the last's
            weight = float(name.split(":")[1])
            mean = self.vector(ids[:WINDOW]) + weight * self.vector(ids[-WINDOW:])
            return (mean / np.linalg.norm(mean)).astype(np.float32)
        chunks = [ids[i : i + WINDOW] for i in range(0, len(ids), WINDOW)]
        if name == "firstlast":
            picked = [ids[:WINDOW], ids[-WINDOW:]]
        elif name.startswith("all:"):
            cap = int(name.split(":")[1])
            picked = [*chunks[: cap - 1], ids[-WINDOW:]]
        else:
            raise SystemExit(f"unknown view {name!r}")
        mean = np.mean([self.vector(c) for c in picked], axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)


def view_matrix(windows: Windows, rows: list[dict[str, str]], x: np.ndarray, lengths: np.ndarray,
                name: str) -> np.ndarray:
    """``x`` with the long rows' vectors of view ``name`` (cached in .cache/, gitignored)."""
    if name == "first":
        return x
    from cascadeflow_cli.routing.vectors import content_hash

    long = np.where(lengths > WINDOW + 2)[0]
    digest = content_hash([rows[i]["query"] for i in long], "v1")
    path = train.CACHE / f"length-{name.replace(':', '_')}-{digest}.npy"
    try:
        vectors = np.load(path)
    except OSError:
        vectors = np.array([windows.view(rows[i]["query"], name) for i in long]).reshape(-1, 384)
        np.save(path, vectors.astype(np.float16))
    vectors = vectors.astype(np.float16).astype(np.float32)  # as the shipped cache's vectors are
    out = x.copy()
    out[long] = vectors
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--salts", nargs="+", default=["", "a", "b"])
    parser.add_argument("--views", nargs="+", default=["first", "firstlast", "all:4", "t256"])
    args = parser.parse_args(argv)
    rows = train.load_rows([*train.DEFAULT_FILES, train.WRITTEN])
    m = train.dev_matrix(rows)
    extra0 = train.chat_extra()
    windows = Windows()
    lengths = np.array([len(windows.tokens(r["query"])) + 2 for r in rows])
    extra_lengths = np.array([len(windows.tokens(r["query"])) + 2 for r in extra0.rows])
    for f in m.dev:
        mask = m.files == f
        counts = [np.sum(mask & (lengths >= lo) & (lengths <= hi)) for lo, hi in BUCKETS]
        print(f"{f}: rows of <= 128, 129-256, > 256 tokens: {' '.join(map(str, counts))}")
    print(f"chat rows longer than 128 tokens: {np.sum(extra_lengths > 128)} of {len(extra0.rows)}")
    print(f"accuracy {' / '.join(m.dev)} plain | nested (general recall on {m.dev[1]}); "
          "nested by length bucket (<=128, 129-256, >256)")
    for name in args.views:
        x = view_matrix(windows, rows, m.x, lengths, name)
        extra = replace(extra0, x=view_matrix(windows, extra0.rows, extra0.x, extra_lengths, name))
        means = []
        for salt in args.salts:
            fold = train.folds_of(rows, m.x, salt=salt)  # one partition for every view
            oof = {}
            for l2 in train.L2S:
                logits, knn = np.zeros((len(rows), len(DOMAINS))), np.zeros((len(rows), len(DOMAINS)))
                for f in range(train.FOLDS):
                    head, _ = train.train_with_extra(x, rows, m.features, fold != f, extra, l2)
                    test = fold == f
                    logits[test] = train.head_logits(head, x[test], m.features[test])
                    knn[test] = head.knn_log_probabilities(x[test])
                oof[l2] = (logits, knn)
            scored = train.plain_and_nested(oof, m.rules, m.sure, m.labels, m.files, fold)
            cells = scored.cells(m.labels, m.files, m.dev, m.general)
            buckets = []
            for f in m.dev:
                parts = []
                for lo, hi in BUCKETS:
                    b = (m.files == f) & (lengths >= lo) & (lengths <= hi)
                    parts.append(f"{np.mean(scored.deep[b] == m.labels[b]):.3f}")
                buckets.append(" ".join(parts))
            deep = [np.mean(scored.deep[m.files == f] == m.labels[m.files == f]) for f in m.dev]
            means.append(np.mean(deep))
            chosen = scored.chosen
            print(f"  {name:<10} {salt!r:<4} {cells[0]} | nested {cells[1]} buckets {' / '.join(buckets)}"
                  f"  ({chosen.l2:g} knn {chosen.knn_weight} w {chosen.weight})", flush=True)
        print(f"  {name:<10} nested mean of the two files over the partitions {np.mean(means):.4f}",
              flush=True)
    print(f"\nload average {' '.join(f'{v:.1f}' for v in os.getloadavg())}, {time.process_time():.0f} s CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
