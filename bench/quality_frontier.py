"""How well the quality check tells good drafts from bad ones, and what that saves.

On labelled draft/verifier answers (Mixtral-8x7B draft, GPT-4 verifier; GSM8K and MBPP
dev sets of /work/shared/data/cascade), 5-fold stratified cross-validation: every fold's
model AND threshold come from the other four folds only (``calibrate_rows`` runs its own
inner CV there, exactly as `cascade calibrate` does), and the held-out fold is scored
with them. Side by side, one run:

* ``calibrated``  -- our calibrated model at the target quality (default 0.95), no code run;
* ``+exec``       -- the same, fitted with ``--execute-code`` (each draft's Python run in the
                     sandbox against the draft's own examples; skip: --no-exec). What
                     `cascade calibrate` does by default where the kernel sandbox is available
                     (quality/sandbox.py), so the ``targets:`` line judges it there;
* ``+semantic``   -- the same, with the ``[semantic]`` extra's query-answer embedding
                     similarity as the ``similarity`` live signal (``--semantic``: needs the
                     extra; the offline MiniLM model, ~10 ms a text);
* ``rules@cv``    -- the rule validator's score, threshold chosen the same way;
* ``rules@0.7``   -- the rule validator as shipped (balanced preset, threshold 0.7);
* ``random``      -- escalating a random share of drafts, at the calibrated escalation rate
                     (expected value); ``random@95%``: at the rate that keeps the target;
* ``oracle``      -- escalating exactly the drafts that are wrong where the verifier is right;
* ``RouteLLM``    -- the published figure for this pair on GSM8K (35% saved at 95%).

Costs (data README): draft $0.60/M in and out, verifier $10 in / $30 out, tokens =
ceil(chars / 4); the draft is always paid, an escalation adds the verifier call.

    python bench/quality_frontier.py [--seeds 0-19] [--target 0.95] [--ablate] [--no-exec]
                                     [--semantic] [--data DIR]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: BLAS threads only contend

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from cascadeflow_cli.quality import sandbox
from cascadeflow_cli.quality.calibrate import (
    Prices,
    calibrate_rows,
    cascade_outcome,
    choose_threshold,
    model_features,
    row_costs,
    row_features,
)
from cascadeflow_cli.quality.features import feature_domain
from cascadeflow_cli.quality.live_signals import query_answer_similarity
from cascadeflow_cli.quality.model import auroc, stratified_folds
from cascadeflow_cli.quality.validator import QualityValidator

DATA = Path("/work/shared/data/cascade")
SETS = {"gsm8k": "gsm8k_mixtral_gpt4_dev.jsonl", "mbpp": "mbpp_mixtral_gpt4_dev.jsonl"}
PRICES = Prices(0.60, 0.60, 10.0, 30.0)
TARGETS = {"gsm8k": (0.80, 0.40), "mbpp": (None, 0.35)}  # (AUROC, savings) at >= 95% quality
ROUTELLM = {"gsm8k": 0.35}

FAMILIES = {  # feature families for --ablate (dropped one at a time)
    "rules": lambda n: n.startswith("rule_"),
    "shape": lambda n: n in ("log_query_chars", "log_answer_chars", "answer_query_ratio"),
    "math": lambda n: n.startswith(
        (
            "query_numbers",
            "final_",
            "calc_",
            "steps_",
            "ungrounded",
            "arithmetic",
            "annotation",
            "self_corr",
            "no_number",
            "has_final",
        )
    ),
    "code": lambda n: n.startswith("code_"),
    "domain": lambda n: n.startswith(("domain_", "complexity")),
}


def load(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            rows.append(
                {
                    "id": r["id"],
                    "query": r["query"],
                    "response": r["draft_answer"],
                    "correct": bool(r["draft_correct"]),
                    "verifier_correct": bool(r["verifier_correct"]),
                    "verifier_response": r["verifier_answer"],
                }
            )
    return rows


def crossval(rows, feats, names, seed, target, margin):
    """Pooled held-out probabilities and accept decisions of the calibrated model and of
    the rule score with a CV threshold."""
    y = np.array([r["correct"] for r in rows], dtype=float)
    v = np.array([r["verifier_correct"] for r in rows], dtype=float)
    rule = np.array([f["rule_score"] for f in feats])
    folds = folds_of(y, seed)
    prob = np.zeros(len(rows))
    accept = np.zeros(len(rows), dtype=bool)
    rule_accept = np.zeros(len(rows), dtype=bool)
    for k in range(5):
        test, train = np.flatnonzero(folds == k), np.flatnonzero(folds != k)
        report = calibrate_rows(
            [rows[i] for i in train],
            target_quality=target,
            margin=margin,
            seed=seed,
            features=[feats[i] for i in train],
            feature_names=names,
        )
        cal = report.calibration
        for i in test:
            prob[i] = cal.probability(feats[i])
            accept[i] = prob[i] >= cal.threshold_for(feature_domain(feats[i]))
        t = choose_threshold(rule[train], y[train], v[train], target, margin)
        rule_accept[test] = rule[test] >= t
    return y, v, prob, accept, rule, rule_accept


def folds_of(y, seed):
    return stratified_folds(y, 5, seed + 1000)


def seed_list(seeds: list[int]) -> str:
    """The seeds as given on the command line would write them: runs as ``0-19``."""
    runs: list[str] = []
    i = 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        runs.append(str(seeds[i]) if j == i else f"{seeds[i]}-{seeds[j]}")
        i = j + 1
    return ",".join(runs)


def row_line(name, auc, quality, savings, esc, note=""):
    auc_s = "   -  " if auc is None else f"{auc:6.3f}"
    return f"  {name:<12} {auc_s}  {quality:8.1%}  {savings:8.1%}  {esc:8.1%}  {note}"


def with_similarity(rows):
    """The rows with the ``similarity`` live signal, measured as the live cascade would with
    the extra, and the embedding time per draft (ms)."""
    from cascadeflow_cli.routing.semantic import shared_embedder

    embed = shared_embedder().embed
    embed(["warm up"])  # loading the model (and, on a first run, converting it) is not per draft
    t0 = time.perf_counter()
    out = [{**r, "similarity": query_answer_similarity(embed, r["query"], r["response"])} for r in rows]
    return out, (time.perf_counter() - t0) / len(rows) * 1e3


def evaluate(name, rows, seeds, target, margin, ablate, execute=True, semantic=False):
    t0 = time.perf_counter()
    feats = [row_features(r) for r in rows]
    feat_ms = (time.perf_counter() - t0) / len(rows) * 1e3
    names = model_features(False)
    exec_runs = []
    if execute:
        t0 = time.perf_counter()
        xfeats = [row_features(r, execute_code=True) for r in rows]
        exec_ms = (time.perf_counter() - t0) / len(rows) * 1e3 - feat_ms
    sem_runs = []
    if semantic:
        sem_rows, sem_ms = with_similarity(rows)
        sem_feats = [row_features(r) for r in sem_rows]
    costs = np.array([row_costs(r, PRICES) for r in rows])
    dc, vc = costs[:, 0], costs[:, 1]
    per_seed = []
    for seed in seeds:
        y, v, prob, accept, rule, rule_accept = crossval(rows, feats, names, seed, target, margin)
        q, s = cascade_outcome(accept, y, v, dc, vc)
        per_seed.append((auroc(y, prob), q, s, 1 - accept.mean(), y, v, prob, accept, rule, rule_accept))
        if execute:
            _, _, xprob, xaccept, *_ = crossval(rows, xfeats, model_features(True), seed, target, margin)
            xq, xs = cascade_outcome(xaccept, y, v, dc, vc)
            exec_runs.append((auroc(y, xprob), xq, xs, 1 - xaccept.mean()))
        if semantic:
            _, _, sprob, saccept, *_ = crossval(sem_rows, sem_feats, names, seed, target, margin)
            sq, ss = cascade_outcome(saccept, y, v, dc, vc)
            sem_runs.append((auroc(y, sprob), sq, ss, 1 - saccept.mean()))
    auc0, q0, s0, esc0, y, v, prob, accept, rule, rule_accept = per_seed[0]
    print(
        f"\n{name}: {len(rows)} rows, draft {y.mean():.3f}, verifier {v.mean():.3f} correct; "
        f"features {feat_ms:.2f} ms/draft; target {target:.0%} of verifier quality"
    )
    print(f"  {'method':<12} {'AUROC':>6}  {'quality':>8}  {'savings':>8}  {'escal.':>8}")
    print(row_line("calibrated", auc0, q0, s0, esc0, f"(seed {seeds[0]})"))
    if execute:
        note = f"(seed {seeds[0]}; running the code: +{exec_ms:.1f} ms/draft)"
        print(row_line("+exec", *exec_runs[0], note))
    if semantic:
        print(row_line("+semantic", *sem_runs[0], f"(seed {seeds[0]}; embeddings: +{sem_ms:.1f} ms/draft)"))
    rq, rs = cascade_outcome(rule_accept, y, v, dc, vc)
    print(row_line("rules@cv", auroc(y, rule), rq, rs, 1 - rule_accept.mean()))
    # the validator as it was before the shape check: the product of the other checks
    before = np.array([math.exp(f["rule_score"] - f["rule_shape"]) for f in feats])
    bt = [
        choose_threshold(
            before[folds_of(y, seed) != k],
            y[folds_of(y, seed) != k],
            v[folds_of(y, seed) != k],
            target,
            margin,
        )
        for k in range(5)
    ]
    before_accept = np.array([before[i] >= bt[folds_of(y, seed)[i]] for i in range(len(rows))])
    bq, bs = cascade_outcome(before_accept, y, v, dc, vc)
    print(
        row_line(
            "seed-rules",
            auroc(y, before),
            bq,
            bs,
            1 - before_accept.mean(),
            "(before this branch, CV threshold)",
        )
    )
    fixed = np.array([QualityValidator("balanced").validate(r["query"], r["response"]).passed for r in rows])
    fq, fs = cascade_outcome(fixed, y, v, dc, vc)
    print(row_line("rules@0.7", auroc(y, rule), fq, fs, 1 - fixed.mean()))
    rate = accept.mean()  # random acceptance at the calibrated rate, expected value
    rand_q = (rate * y.sum() + (1 - rate) * v.sum()) / v.sum()
    rand_s = 1 - (dc.sum() + (1 - rate) * vc.sum()) / vc.sum()
    print(row_line("random", 0.5, rand_q, rand_s, 1 - rate))
    # random acceptance at the largest rate that still keeps the target quality
    loss = v.sum() - y.sum()
    rate_t = min(1.0, (1 - target) * v.sum() / loss) if loss > 0 else 1.0
    rt_q = (rate_t * y.sum() + (1 - rate_t) * v.sum()) / v.sum()
    rt_s = 1 - (dc.sum() + (1 - rate_t) * vc.sum()) / vc.sum()
    print(row_line(f"random@{target:.0%}", 0.5, rt_q, rt_s, 1 - rate_t))
    oracle = y >= v
    oq, os_ = cascade_outcome(oracle, y, v, dc, vc)
    print(row_line("oracle", 1.0, oq, os_, 1 - oracle.mean()))
    if name in ROUTELLM:
        print(f"  {'RouteLLM':<12}    -       95.0%  {ROUTELLM[name]:8.1%}        -   (published)")
    if len(per_seed) > 1:
        labelled = (("calibrated", [p[:4] for p in per_seed]), ("+exec", exec_runs), ("+semantic", sem_runs))
        for label, runs in labelled:
            if not runs:
                continue
            cols = list(zip(*runs, strict=True))
            print(
                f"  {label} over {len(seeds)} seeds ({seed_list(seeds)}): "
                + "; ".join(
                    f"{what} {statistics.mean(c):.3f} ± {statistics.stdev(c):.3f} [{min(c):.3f}-{max(c):.3f}]"
                    for what, c in zip(("AUROC", "quality", "savings", "escal."), cols, strict=True)
                )
                + f"; seeds below {target:.0%} quality: {sum(q < target for q in cols[1])}, "
                f"below {TARGETS[name][1]:.0%} savings: {sum(x < TARGETS[name][1] for x in cols[2])}"
            )  # [min..max]: the target is per held-out set, so the worst seed matters too
    auc_t, sav_t = TARGETS[name]
    # the shipped default: `calibrate` runs drafts' code exactly where the kernel sandbox is
    shipped = exec_runs if exec_runs and sandbox.support().available else per_seed
    mean_auc = statistics.mean(p[0] for p in shipped)
    mean_q = statistics.mean(p[1] for p in shipped)
    mean_s = statistics.mean(p[2] for p in shipped)
    verdict = [
        f"quality {mean_q:.1%} {'>=' if mean_q >= target else '<'} {target:.0%}",
        f"savings {mean_s:.1%} {'>=' if mean_s >= sav_t else '<'} target {sav_t:.0%}",
    ]
    if auc_t is not None:
        verdict.insert(0, f"AUROC {mean_auc:.3f} {'>=' if mean_auc >= auc_t else '<'} target {auc_t:.2f}")
    print(f"  targets ({'+exec' if shipped is exec_runs else 'calibrated'}, the default here): "
          + "; ".join(verdict))
    if exec_runs:
        xs = statistics.mean(r[2] for r in exec_runs)
        xq = statistics.mean(r[1] for r in exec_runs)
        print(
            f"  with --execute-code: AUROC {statistics.mean(r[0] for r in exec_runs):.3f}; "
            f"quality {xq:.1%}; savings {xs:.1%} {'>=' if xs >= sav_t else '<'} target {sav_t:.0%}"
        )
    if sem_runs:
        ss = statistics.mean(r[2] for r in sem_runs)
        print(
            f"  with the [semantic] similarity: AUROC {statistics.mean(r[0] for r in sem_runs):.3f}; "
            f"quality {statistics.mean(r[1] for r in sem_runs):.1%}; savings {ss:.1%}"
        )
    if ablate:
        base = statistics.mean(p[0] for p in per_seed)
        for family, test in FAMILIES.items():
            names = [n for n in model_features(False) if not test(n)]
            aucs, savs = [], []
            for seed in seeds:
                y, v, prob, accept, *_ = crossval(rows, feats, names, seed, target, margin)
                aucs.append(auroc(y, prob))
                savs.append(cascade_outcome(accept, y, v, dc, vc)[1])
            print(
                f"  without {family:<7}: AUROC {statistics.mean(aucs):.3f} "
                f"({statistics.mean(aucs) - base:+.3f}), "
                f"savings {statistics.mean(savs):.1%}"
            )


def parse_seeds(text: str) -> list[int]:
    """``--seeds``: a comma list of seeds and ranges, ``0,1,2``, ``0-19``, ``0-4,10``
    (ranges inclusive, in the order given, repeats dropped)."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        try:
            first, last = int(lo), int(hi if dash else lo)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part.strip()!r} is not a seed or a range like 0-19") from None
        if last < first:
            raise argparse.ArgumentTypeError(f"{part.strip()!r}: a range runs upwards, like 0-19")
        seeds.extend(s for s in range(first, last + 1) if s not in seeds)
    return seeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seeds", type=parse_seeds, default="0,1,2", help="e.g. 0,1,2 or 0-19")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--margin", type=float, default=None, help="override the LCB margin (std errors)")
    parser.add_argument("--ablate", action="store_true", help="CV gain of each feature family")
    parser.add_argument("--only", choices=sorted(SETS), default=None)
    parser.add_argument("--no-exec", action="store_true", help="skip the --execute-code model")
    parser.add_argument(
        "--semantic", action="store_true", help="add the query-answer similarity model (needs [semantic])"
    )
    args = parser.parse_args(argv)
    from cascadeflow_cli.quality import calibrate as cal_module

    margin = cal_module.MARGIN if args.margin is None else args.margin
    seeds = args.seeds
    for name, file in SETS.items():
        if args.only and name != args.only:
            continue
        path = args.data / file
        if not path.exists():
            print(f"{path}: not found", file=sys.stderr)
            return 1
        evaluate(
            name,
            load(path),
            seeds,
            args.target,
            margin,
            args.ablate,
            execute=not args.no_exec,
            semantic=args.semantic,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
