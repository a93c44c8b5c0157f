"""More of the embedding model for the domain head? Out-of-fold, over several fold partitions.

The shipped head reads one view of a query: MiniLM's last layer, mean-pooled over the
tokens (routing.semantic.Embedder). The model computes more in the same call: the other
layers' token states, the [CLS] token, the first tokens (where "write", "explain", "prove"
usually are: the request type) and the last ones. Here each candidate view (unit length)
is put beside the shipped inputs (the embedding and the rules' features) and the whole
selection of bench/train_domain_head.py (penalty, gate, weights, temperatures,
general_below: ``choose``) is run out-of-fold; the nearest examples' vote stays on the
shipped vectors. Each figure is the mean of the two dev files' accuracy, for several fold
partitions (``folds_of``'s salt), because one partition's figure moves by about as much as
most candidates do (real-user 0.895-0.918 for one design over four partitions).

The views are read from the int8 model of the user cache (routing.semantic.model_dir) with
the intermediate layers exposed as extra outputs of the graph (in memory, nothing written);
the vectors are cached in the checkout's .cache/ (gitignored).

    python bench/domain_views.py [--salts '' a b c] [--views mean_l4 mean_l4+first16_l4 ...]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import train_domain_head as train

from cascadeflow_cli.routing.domain import DOMAINS

# the six encoder layers' outputs: each layer ends in its second LayerNormalization
LAYERS = {f"l{i}": f"layer_norm_{2 * i - 1}" for i in range(1, 6)} | {"l6": "last_hidden_state"}
POOLS = ("mean", "cls", "max", "first16", "last16")
DEFAULT_VIEWS = ("cls_l6", "first16_l6", "mean_l5", "first16_l5", "mean_l5+first16_l5")


def pooled(states: np.ndarray) -> dict[str, np.ndarray]:
    """One layer's token states (tokens x 384, [CLS] first, [SEP] last) pooled five ways."""
    return {"mean": states.mean(axis=0), "cls": states[0], "max": states.max(axis=0),
            "first16": states[:16].mean(axis=0), "last16": states[-17:].mean(axis=0)}


def compute_views(texts: list[str]) -> dict[str, np.ndarray]:
    """Every pool of every layer, per text (one text per call, as the Embedder does)."""
    import onnx
    import onnxruntime as ort
    from tokenizers import Tokenizer

    from cascadeflow_cli.routing.semantic import MAX_CHARS, model_dir

    directory = model_dir()
    model = onnx.load(str(directory / "model.onnx"))
    known = {o for n in model.graph.node for o in n.output}
    for name in LAYERS.values():
        if name not in known:
            raise SystemExit(f"{directory / 'model.onnx'}: no output {name!r}; another model layout")
        if name not in {o.name for o in model.graph.output}:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.no_padding()  # the file pads to 128; one text per call needs none
    tokenizer.enable_truncation(128)
    out: dict[str, list[np.ndarray]] = {}
    for text in texts:
        ids = np.array([tokenizer.encode(text[:MAX_CHARS]).ids], dtype=np.int64)
        states = dict(zip(names, session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids),
                                                    "token_type_ids": np.zeros_like(ids)}), strict=True))
        for layer, name in LAYERS.items():
            for pool, vector in pooled(states[name][0]).items():
                out.setdefault(f"{pool}_{layer}", []).append(vector)
    return {k: np.array(v, dtype=np.float32) for k, v in out.items()}


def cached_views(rows: list[dict[str, str]]) -> dict[str, np.ndarray]:
    texts = [r["query"] for r in rows]
    digest = hashlib.sha256("\0".join(texts).encode("utf-8", "surrogatepass")).hexdigest()[:20]
    path = train.CACHE / f"views-{digest}.npz"
    if path.exists():
        with np.load(path) as data:
            return dict(data)
    views = compute_views(texts)
    train.CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, **views)
    return views


def unit(a: np.ndarray) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--salts", nargs="+", default=["", "a", "b", "c"],
                        help="fold partitions ('' as shipped)")
    parser.add_argument("--views", nargs="+", default=list(DEFAULT_VIEWS),
                        help=f"POOL_LAYER (pools {', '.join(POOLS)}; layers l1..l6), '+' joins several")
    args = parser.parse_args(argv)
    missing = [p for p in train.DEFAULT_FILES if not p.exists()]
    if missing:
        print(f"{missing[0]}: not found", file=sys.stderr)
        return 1
    rows = train.load_rows([*train.DEFAULT_FILES, train.WRITTEN])
    x = train.embed_rows(rows)
    views = cached_views(rows)
    unknown = sorted({v for spec in args.views for v in spec.split("+")} - set(views))
    if unknown:
        print(f"unknown view {unknown[0]!r}; known: POOL_LAYER, e.g. mean_l5", file=sys.stderr)
        return 2
    labels = np.array([DOMAINS.index(r["domain"]) for r in rows])
    files = np.array([r["file"] for r in rows])
    rules, sure, features = train.rule_matrix(rows)
    dev = sorted(set(files) - {train.WRITTEN.name})
    print(f"mean of {' and '.join(dev)} accuracy, out-of-fold, per fold partition (salt); "
          f"'shipped' = the embedding and the rules' features")
    print(f"  {'design':<26}" + "".join(f" {s!r:>24}" for s in args.salts)
          + "    mean  (exam / real-user)")
    for spec in ["shipped", *args.views]:
        extra = [] if spec == "shipped" else [unit(views[v]) for v in spec.split("+")]
        # train_head scales "features" by RULE_SCALE for the fit: the views go in unscaled
        design = np.hstack([*(e / train.RULE_SCALE for e in extra), features])
        cells, per_file = [], []
        for salt in args.salts:
            oof = {l2: train.oof_logits(x, rows, design, l2, salt) for l2 in train.L2S}
            chosen = train.choose(oof, rules, sure, labels, files)
            base, knn = oof[chosen.l2]
            probs = train.pipeline(base + chosen.knn_weight * knn, rules, sure, chosen)
            pred = train.decided(probs, sure, chosen)
            accuracy = [float(np.mean(pred[files == f] == labels[files == f])) for f in dev]
            per_file.append(accuracy)
            cells.append(f"{np.mean(accuracy):.4f} ({' / '.join(f'{a:.3f}' for a in accuracy)})")
        means = np.mean(per_file, axis=0)
        print(f"  {spec:<26}" + "".join(f" {c:>24}" for c in cells)
              + f"  {np.mean(means):.4f}  ({' / '.join(f'{m:.3f}' for m in means)})", flush=True)
    print(f"\nload average {' '.join(f'{v:.1f}' for v in os.getloadavg())}, {time.process_time():.0f} s CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
