"""The forecast's sample paths of daily spend: the naive estimate's (a short history's),
and the widening of a backtest's paths to a small sample's reach (`forecast`). Pure numpy."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

PRIOR_CV = 0.5  # day-to-day variation assumed of a short history before its own days are seen ...
PRIOR_DAYS = 3  # ... worth this many days of them


# --- naive estimate for short histories -------------------------------------------


def _naive_paths(y: np.ndarray, days: int, n_paths: int, rng: np.random.Generator,
                 history: int) -> np.ndarray:
    """Days drawn at random from the recent days ``y``, times an uncertain level: the
    mean of n days is known only to about cv/sqrt(n), and the level drifts over the
    horizon, by as much as the history's weekly totals moved from week to week (with
    fewer than three weeks of ``history``: by cv sqrt(days / 4n)). A flat history gets a
    narrow interval, a jumpy one a wide one."""
    import numpy as np

    n = len(y)
    mean = float(np.mean(y))
    cv = float(np.std(y)) / mean if mean > 0 else 0.0
    # a few identical days say nothing about how days vary: the spread starts from a
    # prior day-to-day variation worth PRIOR_DAYS days, which a longer history outweighs
    cv = math.sqrt((n * cv**2 + PRIOR_DAYS * PRIOR_CV**2) / (n + PRIOR_DAYS))
    weeks = y[len(y) % 7:].reshape(-1, 7).sum(axis=1) if n >= 21 else np.zeros(0)
    if len(weeks) >= 3 and np.all(weeks > 0):
        drift = float(np.std(np.diff(np.log(weeks)))) * math.sqrt(days / 14)
    else:
        # by how much the amounts vary (the days with spend, the same prior): the empty
        # days are the rate of spend, whose uncertainty cv / sqrt(n) holds already. The
        # days' cv itself (4.4 for one $250 day in 20) drifted a burst to a 90% bound of
        # $7,119, 28 bursts in 30 days; for a user who spends every day the two agree
        sizes = y[y > 0]
        size_cv = float(np.std(sizes)) / float(np.mean(sizes)) if len(sizes) else 0.0
        size_cv = math.sqrt((len(sizes) * size_cv**2 + PRIOR_DAYS * PRIOR_CV**2) / (len(sizes) + PRIOR_DAYS))
        drift = size_cv * math.sqrt(days / (4.0 * max(history, 7)))
    # a relative uncertainty (cv / sqrt(n), drift) as the sigma of a lognormal level with
    # that relative spread: used as the sigma itself, one $250 day in 20 (cv 4.4) gave a
    # level sigma of 2.8 and an upper bound of $66,080 for a user who had spent $250
    spread = math.sqrt(math.log1p(cv**2 / n + drift**2))
    draws = rng.choice(y, size=(n_paths, days), replace=True)
    paths = draws * np.exp(rng.normal(0.0, spread, size=(n_paths, 1)))
    # centred so the median total is the recent days' mean x days (a bootstrap sum of
    # skewed days has a lower median: that would under-forecast every bursty user)
    middle = float(np.median(paths.sum(axis=1)))
    return paths * (mean * days / middle) if middle > 0 else paths


def _widen(paths: np.ndarray, factor: float, horizon: int) -> np.ndarray:
    """Spread the paths' ``horizon``-day totals ``factor`` times wider on the log scale
    around their median, scaling each path as a whole (its days keep their shape)."""
    import numpy as np

    totals = paths[:, :horizon].sum(axis=1)
    spent = totals > 0
    if factor <= 1.0 or spent.sum() < 2:
        return paths
    log_totals = np.log(totals[spent])
    centre = float(np.median(log_totals))
    scale = np.exp((factor - 1.0) * (log_totals - centre))
    out = paths.copy()
    out[spent] *= scale[:, None]
    return out


def _log_width(paths: np.ndarray, horizon: int, confidence: float) -> float:
    """The width of the central ``confidence`` of the paths' log ``horizon``-day totals."""
    import numpy as np

    totals = paths[:, :horizon].sum(axis=1)
    totals = totals[totals > 0]
    if len(totals) < 2:
        return 0.0
    lo, hi = np.quantile(np.log(totals), [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(hi - lo)
