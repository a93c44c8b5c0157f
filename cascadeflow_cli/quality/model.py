"""The small numerical core of the calibrated quality model (numpy, imported lazily by
callers): L2-regularised logistic regression on standardised features, fitted by Newton
steps, stratified folds, out-of-fold predictions, and AUROC.

Small on purpose: a few thousand rows and a hundred features fit in milliseconds, and
every number the model holds can be written to a JSON file and checked on load.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

if "numpy" not in sys.modules:
    # Matrices here are small: BLAS threads only contend with each other (measured: a
    # 4,000 x 70 fit took 0.40 s with the default threads, 0.07 s with one, on 2 cores).
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

# L2 strengths (on the summed log-loss) tried by inner CV
LAMBDAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)


@dataclass(frozen=True)
class Fitted:
    """A fitted model: ``p = sigmoid(slope * (w . (x - mean) / scale + bias) + intercept)``;
    ``slope``/``intercept`` are the Platt recalibration of the raw logit."""

    mean: list[float]
    scale: list[float]
    weights: list[float]
    bias: float
    slope: float = 1.0
    intercept: float = 0.0
    lam: float = 1.0


def sigmoid(z: np.ndarray) -> np.ndarray:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-np.clip(z, -35.0, 35.0)))


def fit_logistic(
    x: np.ndarray, y: np.ndarray, lam: float, iterations: int = 50, start: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Weights and bias minimising mean log-loss + ``lam / 2 * |w|^2 / n`` (the bias is
    not penalised), by Newton's method with a step-halving safeguard. ``start``: weights
    and bias to start from (the solution for a nearby ``lam``: a few steps then suffice)."""
    import numpy as np

    n, k = x.shape
    xb = np.empty((n, k + 1))
    xb[:, :k] = x
    xb[:, k] = 1.0
    theta = np.zeros(k + 1) if start is None else np.asarray(start, dtype=float).copy()
    penalty = np.full(k + 1, lam)
    penalty[-1] = 0.0
    ridge = np.diag(penalty + 1e-9)

    def loss(t: np.ndarray, z: np.ndarray) -> float:
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(penalty * t * t))

    z = xb @ theta
    current = loss(theta, z)
    for _ in range(iterations):
        p = sigmoid(z)
        grad = xb.T @ (p - y) + penalty * theta
        hess = (xb.T * (p * (1 - p))) @ xb + ridge
        step = np.linalg.solve(hess, grad)
        dz = xb @ step  # the logits move linearly along the step: one product per Newton step
        size = 1.0
        while size > 1e-4:
            trial, z_trial = theta - size * step, z - size * dz
            value = loss(trial, z_trial)
            if value <= current + 1e-12:
                break
            size /= 2
        else:
            break
        theta, z, improved = trial, z_trial, current - value
        current = value
        if improved < 1e-9 * max(1.0, abs(current)):
            break
    return theta[:-1], float(theta[-1])


def standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and scales (a constant column gets scale 1, so it stays at 0)."""

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    return mean, scale


def stratified_folds(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """A fold number per row, each class spread evenly over the ``k`` folds."""
    import numpy as np

    rng = np.random.default_rng(seed)
    folds = np.empty(len(y), dtype=int)
    for label in (0, 1):
        idx = np.flatnonzero(y == label)
        rng.shuffle(idx)
        folds[idx] = np.arange(len(idx)) % k
    return folds


def _raw_fit(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    mean, scale = standardise(x)
    w, b = fit_logistic((x - mean) / scale, y, lam)
    return mean, scale, w, b


def _raw_logit(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    return ((x - mean) / scale) @ w + b


def out_of_fold_logits(
    x: np.ndarray, y: np.ndarray, folds: np.ndarray, lams: Sequence[float]
) -> dict[float, np.ndarray]:
    """Each row's raw logit from a model fitted on the other folds, for every L2 strength
    in ``lams``. Per fold the strengths are fitted from the strongest down, each starting
    from the previous solution (the same optima, a fraction of the Newton steps)."""
    import numpy as np

    logits = {lam: np.zeros(len(y)) for lam in lams}
    for f in np.unique(folds):
        test = folds == f
        train = ~test
        if len(np.unique(y[train])) < 2:  # a fold without both classes: predict the base rate
            rate = min(max(y[train].mean(), 1e-3), 1 - 1e-3)
            for out in logits.values():
                out[test] = np.log(rate / (1 - rate))
            continue
        mean, scale = standardise(x[train])
        x_train, x_test = (x[train] - mean) / scale, (x[test] - mean) / scale
        start = None
        for lam in sorted(lams, reverse=True):
            w, b = fit_logistic(x_train, y[train], lam, start=start)
            start = np.append(w, b)
            logits[lam][test] = x_test @ w + b
    return logits


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    import numpy as np

    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def fit(x: np.ndarray, y: np.ndarray, *, folds: int = 5, seed: int = 0) -> tuple[Fitted, np.ndarray]:
    """The model fitted on all rows (L2 strength chosen by ``folds``-fold CV log-loss,
    then Platt-recalibrated on the out-of-fold logits), and each row's out-of-fold
    probability under that recalibration (what thresholds and reported figures use)."""

    assignment = stratified_folds(y, folds, seed)
    best: tuple[float, float, np.ndarray] | None = None
    by_lam = out_of_fold_logits(x, y, assignment, LAMBDAS)
    for lam in LAMBDAS:
        logits = by_lam[lam]
        loss = log_loss(y, sigmoid(logits))
        if best is None or loss < best[0] - 1e-9:
            best = (loss, lam, logits)
    assert best is not None
    _, lam, logits = best
    # Platt scaling on the out-of-fold logits: L2 shrinks the logit, this undoes it.
    ab, c = fit_logistic(logits[:, None], y, 1e-3)
    slope, intercept = float(ab[0]), float(c)
    if not slope > 0:  # no usable signal: keep the raw logit rather than invert it
        slope, intercept = 1.0, 0.0
    oof = sigmoid(slope * logits + intercept)
    mean, scale, w, b = _raw_fit(x, y, lam)
    fitted = Fitted(mean.tolist(), scale.tolist(), w.tolist(), b, slope, intercept, lam)
    return fitted, oof


def predict(fitted: Fitted, x: np.ndarray) -> np.ndarray:
    import numpy as np

    raw = _raw_logit(
        x, np.asarray(fitted.mean), np.asarray(fitted.scale), np.asarray(fitted.weights), fitted.bias
    )
    return sigmoid(fitted.slope * raw + fitted.intercept)


def auroc(y: Sequence[float] | np.ndarray, score: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve (ties count half); 0.5 when one class is absent."""
    import numpy as np

    y = np.asarray(y, dtype=float)
    s = np.asarray(score, dtype=float)
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if pos == 0 or neg == 0:
        return 0.5
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))
