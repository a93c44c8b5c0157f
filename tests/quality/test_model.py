"""The numerical core and the calibration's speed paths: the warm-started L2 path finds
the same models as fitting each strength from scratch, and features computed on several
processes are the ones computed in this one, in the same order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cascadeflow_cli.quality import calibrate
from cascadeflow_cli.quality.features import feature_vector
from cascadeflow_cli.quality.model import (
    LAMBDAS,
    fit_logistic,
    out_of_fold_logits,
    standardise,
    stratified_folds,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "calibration_sample.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]


def test_the_warm_started_path_finds_the_same_models() -> None:
    feats = [calibrate.row_features(r) for r in ROWS]
    x = np.asarray([feature_vector(f) for f in feats])
    y = np.asarray([r["correct"] for r in ROWS], dtype=float)
    folds = stratified_folds(y, 5, seed=0)
    warm = out_of_fold_logits(x, y, folds, LAMBDAS)
    for lam in (LAMBDAS[0], LAMBDAS[-1]):  # the last and the first of the warm path
        cold = np.zeros(len(y))
        for f in range(5):
            test = folds == f
            mean, scale = standardise(x[~test])
            w, b = fit_logistic((x[~test] - mean) / scale, y[~test], lam)
            cold[test] = ((x[test] - mean) / scale) @ w + b
        assert np.allclose(warm[lam], cold, atol=1e-4), lam


def test_features_on_several_processes_match_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calibrate, "PARALLEL_MIN_ROWS", 10)  # the fixture is small
    serial = [calibrate.row_features(r) for r in ROWS]
    assert calibrate.rows_features(ROWS) == serial
