"""Fit a calibration from labelled drafts: ``calibrate_rows(rows, ...)``.

A row is a plain dict: ``{"query", "response", "correct": bool, "verifier_correct"?:
bool, "domain"?, "finish_reason"?, "id"?}`` (plus optional token counts
``input_tokens``, ``output_tokens``, ``verifier_output_tokens`` and live signals of
:data:`.features.LIVE_SIGNALS`). The same function serves `cascade calibrate FILE`,
`cascade calibrate --from-ledger` (rows built from ledger labels) and the benchmark.

Threshold for a target quality ``q``: accepting the drafts scored ``>= t`` must keep the
cascade's quality (accepted -> the draft's label, escalated -> the verifier's) at least
``q`` times the verifier's. Per row that is ``z = accept * (correct - verifier_correct)
+ (1 - q) * verifier_correct`` with mean ``>= 0``; we ask for the lower confidence bound
``mean(z) - margin * sd(z) / sqrt(n) >= 0`` on out-of-fold probabilities, so the fewer
the rows, the wider the margin. The lowest such ``t`` (most drafts accepted) wins; per
domain where the domain has enough rows of both kinds, else the global one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.words import count_of

from .calibrated import FORMAT_VERSION, Calibration
from .features import (
    EXEC_FEATURES,
    EXEC_REPLACES,
    FEATURE_NAMES,
    LIVE_SIGNALS,
    draft_features,
    feature_domain,
    feature_vector,
)
from .model import auroc, fit  # before numpy: it limits BLAS threads

if TYPE_CHECKING:
    import numpy as np

MIN_ROWS = 30  # fewer labelled rows than this cannot say anything about a threshold
MIN_CLASS = 5  # and each of good / bad drafts must appear at least this often
DOMAIN_MIN_ROWS = 100  # a domain gets its own threshold from this many rows ...
DOMAIN_MIN_CLASS = 15  # ... with this many good and bad drafts each
MARGIN = 1.0  # standard errors of safety under the quality constraint
RELIABILITY_BINS = 5
# From this many rows the features (most of a calibration's time: ~3 ms a row, the fit is
# ~0.2 ms a row) are computed on every core; below it a process pool costs more than it saves.
PARALLEL_MIN_ROWS = 1000


class CalibrationDataError(ValueError):
    """The rows cannot be calibrated on (too few, one class only, bad labels ...)."""


@dataclass(frozen=True)
class Prices:
    """USD per million tokens: draft in / out, verifier in / out."""

    draft_in: float
    draft_out: float
    verifier_in: float
    verifier_out: float


@dataclass(frozen=True)
class ReliabilityBin:
    bin: str
    predicted: float
    observed: float
    n: int


@dataclass(frozen=True)
class CalibrationReport:
    """What `cascade calibrate` prints, plus the calibration to write."""

    calibration: Calibration
    rows: int
    auroc: float
    threshold: float
    thresholds_by_domain: dict[str, float]
    expected_quality: float  # the cascade's quality as a share of the verifier's (out of fold)
    expected_savings: float | None  # None without prices
    acceptance: float
    reliability: list[ReliabilityBin] = field(default_factory=list)
    verifier_quality: float = 1.0
    draft_quality: float = 0.0


# --------------------------------------------------------------------------- rows


def _label(row: Mapping[str, Any], key: str, where: str, required: bool) -> bool | None:
    value = row.get(key)
    if value is None:
        if required:
            raise CalibrationDataError(f"{where}: missing {key!r} (true or false)")
        return None
    if not isinstance(value, bool):
        raise CalibrationDataError(f"{where}: {key!r} must be true or false, got {value!r}")
    return value


def row_features(row: Mapping[str, Any], execute_code: bool = False) -> dict[str, float]:
    """The features of one labelled row, with the same code the live cascade uses;
    ``execute_code``: run the response's Python in the sandbox (:mod:`.code_exec`)."""
    live = {name: row.get(name) for name in LIVE_SIGNALS if row.get(name) is not None}
    response = str(row.get("response") or "")
    execution = None
    if execute_code:
        from .code_exec import program_of, run_program

        execution = run_program(program_of(response))
    return draft_features(
        str(row.get("query") or ""),
        response,
        finish_reason=row.get("finish_reason"),
        domain=row.get("domain"),
        execution=execution,
        **live,
    )


def model_features(execute_code: bool = False) -> tuple[str, ...]:
    """The feature list a calibration fits on: the execution ones only when the code is
    run (a calibration that lists them needs execution to score), and then not the static
    guesses at what the run observes (:data:`.features.EXEC_REPLACES`)."""
    left_out = EXEC_REPLACES if execute_code else EXEC_FEATURES
    return tuple(n for n in FEATURE_NAMES if n not in left_out)


def rows_features(
    rows: Sequence[Mapping[str, Any]], execute_code: bool = False, *, parallel: bool | None = None
) -> list[dict[str, float]]:
    """:func:`row_features` of every row, in order; on all the cores this process may use
    when there are many rows (forked workers: they start with the loaded detector and
    rules) or ``parallel`` says so. Falls back to one process where forking is not
    available or fails. The same features either way (the sandbox's limits are CPU time)."""
    import functools

    one = functools.partial(row_features, execute_code=execute_code)
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if (len(rows) >= PARALLEL_MIN_ROWS if parallel is None else parallel) and workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        if "fork" in multiprocessing.get_all_start_methods():
            try:
                with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
                    return list(pool.map(one, rows, chunksize=max(1, len(rows) // (4 * workers))))
            except (OSError, BrokenProcessPool):
                pass  # no processes to be had (limits, a sandbox): do it here
    return [one(r) for r in rows]


def _tokens(row: Mapping[str, Any], key: str, text: str) -> int:
    value = row.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return math.ceil(len(text) / 4)


def row_costs(row: Mapping[str, Any], prices: Prices) -> tuple[float, float]:
    """(draft cost, verifier cost) of one row in USD: token counts when the row has them,
    else characters / 4; the verifier's answer is taken as long as the draft's unless
    the row says (``verifier_output_tokens`` or ``verifier_response``)."""
    query = str(row.get("query") or "")
    tin = _tokens(row, "input_tokens", query)
    tout = _tokens(row, "output_tokens", str(row.get("response") or ""))
    vout = (
        _tokens(row, "verifier_output_tokens", str(row.get("verifier_response") or ""))
        if row.get("verifier_output_tokens") is not None or row.get("verifier_response")
        else tout
    )
    draft = (tin * prices.draft_in + tout * prices.draft_out) / 1e6
    verifier = (tin * prices.verifier_in + vout * prices.verifier_out) / 1e6
    return draft, verifier


# --------------------------------------------------------------------------- thresholds


def choose_threshold(
    p: np.ndarray, good: np.ndarray, verifier: np.ndarray, target: float, margin: float = MARGIN
) -> float:
    """The lowest accept threshold keeping the lower confidence bound of the cascade's
    quality at or above ``target`` x the verifier's (see the module docstring); 1.0
    (accept nothing) when no threshold does."""
    import numpy as np

    n = len(p)
    if n == 0:
        return math.inf
    base = (1.0 - target) * verifier
    gain = good - verifier
    order = np.argsort(-p, kind="mergesort")
    # accepting the top-k rows by probability, for every k; ties are accepted together
    sorted_p = p[order]
    z_sum = base.sum() + np.concatenate([[0.0], np.cumsum(gain[order])])
    # sum of squares of z for the top-k accepted
    sq_accept = (base + gain) ** 2
    sq_escalate = base**2
    sq = sq_escalate.sum() + np.concatenate([[0.0], np.cumsum((sq_accept - sq_escalate)[order])])
    mean = z_sum / n
    var = np.maximum(sq / n - mean**2, 0.0)
    lcb = mean - margin * np.sqrt(var / max(1, n - 1))
    best = math.inf
    for k in range(n, 0, -1):
        if k < n and sorted_p[k] == sorted_p[k - 1]:
            continue  # a threshold cannot split tied probabilities
        if lcb[k] >= 0:
            best = float(sorted_p[k - 1])
            break
    return best


def _up(threshold: float) -> float:
    """A threshold for the file: 4 decimals, rounded up (never accepts more than chosen),
    and 1.0 (accept nothing) for none."""
    return 1.0 if threshold >= 1.0 else min(1.0, math.ceil(threshold * 1e4 - 1e-9) / 1e4)


def cascade_outcome(
    accept: np.ndarray,
    good: np.ndarray,
    verifier: np.ndarray,
    draft_cost: np.ndarray,
    verifier_cost: np.ndarray,
) -> tuple[float, float]:
    """(quality as a share of the verifier's, savings vs. the verifier alone)."""
    import numpy as np

    quality = float(np.where(accept, good, verifier).sum())
    base = float(verifier.sum())
    cost = float((draft_cost + np.where(accept, 0.0, verifier_cost)).sum())
    return (quality / base if base else 1.0), 1.0 - cost / float(verifier_cost.sum())


def reliability(p: np.ndarray, y: np.ndarray, bins: int = RELIABILITY_BINS) -> list[ReliabilityBin]:
    """Predicted vs observed share of good drafts in equal-width probability bins."""
    import numpy as np

    out: list[ReliabilityBin] = []
    edges = np.linspace(0.0, 1.0, bins + 1)
    for i in range(bins):
        lo, hi = edges[i], edges[i + 1]
        mask = (p >= lo) & ((p < hi) if i < bins - 1 else (p <= hi))
        if mask.any():
            out.append(
                ReliabilityBin(
                    f"{lo:.1f}-{hi:.1f}",
                    round(float(p[mask].mean()), 4),
                    round(float(y[mask].mean()), 4),
                    int(mask.sum()),
                )
            )
    return out


# --------------------------------------------------------------------------- fit


def calibrate_rows(
    rows: Iterable[Mapping[str, Any]],
    *,
    target_quality: float = 0.95,
    prices: Prices | None = None,
    margin: float = MARGIN,
    seed: int = 0,
    features: Sequence[dict[str, float]] | None = None,
    feature_names: Sequence[str] | None = None,
    execute_code: bool = False,
) -> CalibrationReport:
    """Fit the quality model on labelled rows and pick thresholds for ``target_quality``.

    ``features``: precomputed :func:`row_features` of the rows (the benchmark reuses
    them across folds). ``feature_names``: the model's features (default
    :func:`model_features`). ``execute_code``: run each response's Python in the sandbox
    and fit on what that shows too (the calibration then needs execution to score).
    Raises :class:`CalibrationDataError` for rows that cannot be calibrated on; the
    message names the row (``row N`` or its id).
    """
    import numpy as np

    if not 0.0 < target_quality <= 1.0 or math.isnan(target_quality):
        raise CalibrationDataError(f"target quality must be within (0, 1], got {target_quality!r}")
    rows = list(rows)
    seen: dict[Any, int] = {}
    good, verifier, domains = [], [], []
    for i, row in enumerate(rows, 1):
        where = f"row {i}" if row.get("id") is None else f"row {i} (id {row['id']!r})"
        if not isinstance(row.get("query"), str) or not isinstance(row.get("response"), str):
            raise CalibrationDataError(f"{where}: needs string 'query' and 'response'")
        rid = row.get("id")
        if rid is not None:
            if rid in seen:
                raise CalibrationDataError(f"{where}: duplicate id {rid!r} (first at row {seen[rid]})")
            seen[rid] = i
        good.append(_label(row, "correct", where, True))
        v = _label(row, "verifier_correct", where, False)
        verifier.append(True if v is None else v)  # unknown: assume the verifier is right
        domains.append(row.get("domain") if isinstance(row.get("domain"), str) else None)
    n = len(rows)
    y = np.asarray(good, dtype=float)
    if n < MIN_ROWS:
        raise CalibrationDataError(
            f"only {count_of(n, 'labelled row')}: calibration needs at least {MIN_ROWS}")
    positives = int(y.sum())
    if min(positives, n - positives) < MIN_CLASS:
        raise CalibrationDataError(
            f"{positives} good and {n - positives} bad drafts: calibration needs at least {MIN_CLASS} of each"
        )
    if feature_names is None:
        feature_names = model_features(execute_code)
    feats = list(features) if features is not None else rows_features(rows, execute_code)
    x = np.asarray([feature_vector(f, feature_names) for f in feats], dtype=float)
    v = np.asarray(verifier, dtype=float)

    fitted, oof = fit(x, y, seed=seed)
    # A calibrated probability is < 1 (the logit is clipped), so 1.0 accepts nothing.
    threshold = _up(choose_threshold(oof, y, v, target_quality, margin))
    by_domain: dict[str, float] = {}
    masks: dict[str, np.ndarray] = {}
    detected = [d if d else feature_domain(f) for d, f in zip(domains, feats, strict=True)]
    for name in sorted(set(detected)):
        mask = np.asarray([d == name for d in detected])
        pos = int(y[mask].sum())
        if mask.sum() >= DOMAIN_MIN_ROWS and min(pos, int(mask.sum()) - pos) >= DOMAIN_MIN_CLASS:
            masks[name] = mask
            by_domain[name] = _up(choose_threshold(oof[mask], y[mask], v[mask], target_quality, margin))
    cut = np.asarray([by_domain.get(d, threshold) for d in detected])
    # The same model's thresholds for other targets, so `target_quality` in the config
    # can move without refitting.
    by_target: dict[float, tuple[float, dict[str, float]]] = {}
    for step in range(80, 101):
        t = step / 100
        if abs(t - target_quality) < 1e-9:
            continue
        by_target[t] = (
            _up(choose_threshold(oof, y, v, t, margin)),
            {
                name: _up(choose_threshold(oof[masks[name]], y[masks[name]], v[masks[name]], t, margin))
                for name in by_domain
            },
        )
    accept = oof >= cut

    quality = float(np.where(accept, y, v).sum()) / max(1e-9, float(v.sum()))
    savings = None
    if prices is not None:
        costs = np.asarray([row_costs(r, prices) for r in rows])
        savings = cascade_outcome(accept, y, v, costs[:, 0], costs[:, 1])[1]
    score = auroc(y, oof)
    calibration = Calibration(
        version=FORMAT_VERSION,
        features=list(feature_names),
        mean=fitted.mean,
        scale=fitted.scale,
        weights=fitted.weights,
        bias=fitted.bias,
        slope=fitted.slope,
        intercept=fitted.intercept,
        threshold=threshold,
        thresholds_by_domain=by_domain,
        target_quality=target_quality,
        rows=n,
        auroc=round(score, 4),
        by_target=by_target,
    )
    return CalibrationReport(
        calibration=calibration,
        rows=n,
        auroc=score,
        threshold=threshold,
        thresholds_by_domain=by_domain,
        expected_quality=quality,
        expected_savings=savings,
        acceptance=float(accept.mean()),
        reliability=reliability(oof, y),
        verifier_quality=float(v.mean()),
        draft_quality=float(y.mean()),
    )
