"""Live signals as quality features (issue 9): token log-probabilities summarised the way
the token-level-uncertainty literature recommends (mean, minimum, low quantiles), and the
agreement share of N sampled answers. Pure; the names are the calibrated model's
``LIVE_SIGNALS`` keywords (quality/features.py), so a live draft, a ledger row and a
calibration file row all carry the same keys."""

from __future__ import annotations

import math
from collections.abc import Sequence

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
