"""Live signals as quality features (issue 9): token log-probabilities summarised the way
the token-level-uncertainty literature recommends (mean, minimum, low quantiles), the
agreement share of N sampled answers, and the query-answer embedding similarity. Pure; the
names are the calibrated model's ``LIVE_SIGNALS`` keywords (quality/features.py), so a live
draft, a ledger row and a calibration file row all carry the same keys."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

LOGPROB_SIGNALS = ("logprob_mean", "logprob_min", "logprob_p10", "logprob_p25")


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of a non-empty sequence (numpy's default method)."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def live_signals(logprobs: Sequence[float] | None = None, agreement: float | None = None) -> dict[str, float]:
    """The features for what was measured; a signal that was not measured is left out
    (the model then uses its "missing" indicator)."""
    out: dict[str, float] = {}
    values = [v for v in (logprobs or ()) if math.isfinite(v)]
    if values:
        out["logprob_mean"] = round(sum(values) / len(values), 6)
        out["logprob_min"] = round(min(values), 6)
        out["logprob_p10"] = round(quantile(values, 0.10), 6)
        out["logprob_p25"] = round(quantile(values, 0.25), 6)
    if agreement is not None and math.isfinite(agreement):
        out["agreement"] = float(agreement)
    return out


def cosine(u: Sequence[float], v: Sequence[float]) -> float:
    """Cosine of two vectors; 0.0 when either is zero."""
    dot = sum(x * y for x, y in zip(u, v, strict=True))
    nu, nv = math.sqrt(sum(x * x for x in u)), math.sqrt(sum(y * y for y in v))
    return dot / (nu * nv) if nu and nv else 0.0


def embedding_similarity(embed: Callable[[list[str]], Any], a: str, b: str) -> float:
    """Cosine of the embeddings of ``a`` and ``b``, with ``embed`` the caller's embedder
    (texts -> rows of vectors, e.g. the ``[semantic]`` extra's ``shared_embedder().embed``):
    the ``similarity`` signal for a query and its answer, and the agreement of two prose
    answers (:mod:`.agreement`)."""
    va, vb = ([float(x) for x in row] for row in embed([a, b]))
    return cosine(va, vb)
