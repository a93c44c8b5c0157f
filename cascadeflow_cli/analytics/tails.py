"""Thresholds that page at a stated false-alarm rate on the series in front of them.

The anomaly scores of ordinary days (a residual over a robust local spread) are close to
normal on a calm series and far from it on a bursty one. Each side of the scores (spikes
above, drops below) is fitted with a scaled Student-t: its degrees of freedom from how
far a high percentile of the side's magnitudes (the 90th on a short series, the 95th
on a long one) lies beyond their median (the tail shape of the series' own
distribution, which a few real anomalies hardly move),
its scale from the median. The threshold of a side is that t's quantile at half the
false-alarm rate: a rate of 3 per 1,000 ordinary days pages about 1.5 times per 1,000
days on spikes and 1.5 on drops, on a heavy-tailed series and on a calm one alike.

A series' scores also hold its real events (a burst, an injected spike every few weeks),
which sit in the very percentile the fit reads and make it read a heavier tail: on the
synthetic users, five x0.2 drops in a year raised the drop threshold from 3.3 to 4.2 and
hid the drops themselves. So the fit is repeated without the scores beyond the medium
rate's thresholds until none are left beyond (`_untouched`): on ordinary days that sets
aside about 1.5 a side in 1,000, which hardly moves the percentiles, while events that
stand out are not read as the tail. Always at the medium rate, whatever the requested
one: at high's 5 a side in 1,000 each round set aside the fit's own tail, and the
threshold fell round after round (heavy tails paged 26 per 1,000 at high, stated 10).

The t quantiles are tabulated (computed once with scipy.stats.t.ppf; nothing here needs
scipy at run time).
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# false alarms per 1,000 ordinary days, per sensitivity
RATES = {"low": 1.0, "medium": 3.0, "high": 10.0}
MIN_SIDE = 40  # scores on a side needed to fit it at all (fewer: the normal threshold)
PRIOR_SIDE = 60  # the normal threshold weighs as much as this many scores of a side
MIN_DF = 2.0  # tails no heavier than a t with 2 degrees of freedom (else a series goes blind)
SET_ASIDE_RATE = 3.0  # the rate whose thresholds set events aside before the fit (medium's)
MAX_ROUNDS = 10  # rounds of setting aside (it settles in two or three)
MIN_SHIFT_NULL = 56  # look-ahead medians (eight weeks of them) before they set the shift need

# df, t quantiles at 0.75 and at 0.95, 0.975, 0.99, 0.995: the median of |t| and its
# 90th, 95th, 98th and 99th percentiles (FIT_LEVELS)
_BODY = (
    (1.0, 1.0000, 6.3138, 12.7062, 31.8205, 63.6567),
    (1.25, 0.9210, 4.5480, 8.0280, 16.7951, 29.2720),
    (1.5, 0.8726, 3.7052, 6.0167, 11.1973, 17.8203),
    (2.0, 0.8165, 2.9200, 4.3027, 6.9646, 9.9248),
    (2.5, 0.7850, 2.5582, 3.5747, 5.3531, 7.1637),
    (3.0, 0.7649, 2.3534, 3.1824, 4.5407, 5.8409),
    (4.0, 0.7407, 2.1318, 2.7764, 3.7469, 4.6041),
    (5.0, 0.7267, 2.0150, 2.5706, 3.3649, 4.0321),
    (7.0, 0.7111, 1.8946, 2.3646, 2.9980, 3.4995),
    (10.0, 0.6998, 1.8125, 2.2281, 2.7638, 3.1693),
    (15.0, 0.6912, 1.7531, 2.1314, 2.6025, 2.9467),
    (30.0, 0.6828, 1.6973, 2.0423, 2.4573, 2.7500),
    (1e6, 0.6745, 1.6449, 1.9600, 2.3264, 2.5758),
)
FIT_LEVELS = (0.9, 0.95)  # of |scores|: the highest with FIT_ABOVE points above it (0.95: still
# robust to a twentieth of the days being real anomalies or an undetected shift)
FIT_ABOVE = 10
# df -> t quantiles at 1 - 0.0005, 1 - 0.0015, 1 - 0.005 (half of each rate above, per side)
_TAIL = {
    1.0: (636.6192, 212.2050, 63.6567), 1.25: (184.7848, 76.7261, 29.2720),
    1.5: (82.8474, 39.8186, 17.8203), 2.0: (31.5991, 18.2163, 9.9248), 2.5: (18.2779, 11.7299, 7.1637),
    3.0: (12.9240, 8.8915, 5.8409), 4.0: (8.6103, 6.4348, 4.6041), 5.0: (6.8688, 5.3760, 4.0321),
    7.0: (5.4079, 4.4421, 3.4995), 10.0: (4.5869, 3.8920, 3.1693), 15.0: (4.0728, 3.5350, 2.9467),
    30.0: (3.6460, 3.2296, 2.7500), 1e6: (3.2905, 2.9677, 2.5758),
}
_RATE_INDEX = {1.0: 0, 3.0: 1, 10.0: 2}


def normal_threshold(rate: float) -> float:
    """The two-sided normal threshold of a rate per 1,000 days (low 3.29, medium 2.97,
    high 2.58): the scale shifts are judged on."""
    return _TAIL[1e6][_RATE_INDEX[rate]]


def side_threshold(magnitudes: np.ndarray, rate: float) -> tuple[float, float]:
    """The threshold of one side (magnitudes of its scores) for ``rate`` false alarms per
    1,000 days, and the t's degrees of freedom fitted to it. The tail is read as far out
    as the side has FIT_ABOVE points beyond (a long series: its 95th percentile, so the
    fit extrapolates less; a short one: its 90th)."""
    import numpy as np

    level = 1
    for i, q in enumerate(FIT_LEVELS):
        if len(magnitudes) * (1 - q) >= FIT_ABOVE:
            level = i + 1
    median = float(np.quantile(magnitudes, 0.5))
    upper = float(np.quantile(magnitudes, FIT_LEVELS[level - 1]))
    if median <= 0 or not math.isfinite(upper):
        return normal_threshold(rate), math.inf
    ratio = upper / median
    # the t whose |t| has that ratio of the percentile to its median (ratios fall with df)
    ratios = [(row[0], row[1 + level] / row[1]) for row in _BODY]
    df, q75 = ratios[-1][0], _BODY[-1][1]
    if ratio >= ratios[0][1]:
        df, q75 = _BODY[0][0], _BODY[0][1]
    else:
        for (df_a, r_a), (df_b, r_b), body_a, body_b in zip(ratios, ratios[1:], _BODY, _BODY[1:],
                                                            strict=False):
            if r_b <= ratio <= r_a:
                w = (r_a - ratio) / (r_a - r_b)  # 0 at df_a, 1 at df_b
                df = math.exp((1 - w) * math.log(df_a) + w * math.log(df_b))
                q75 = (1 - w) * body_a[1] + w * body_b[1]
                break
    df = max(df, MIN_DF)
    return median / q75 * _tail_quantile(df, rate), df


def _tail_quantile(df: float, rate: float) -> float:
    """The tabulated t quantile for ``rate``, interpolated in log df (and log quantile)."""
    index = _RATE_INDEX[rate]
    grid = sorted(_TAIL)
    if df >= grid[-1]:
        return _TAIL[grid[-1]][index]
    for a, b in pairwise(grid):
        if a <= df <= b:
            w = (math.log(df) - math.log(a)) / (math.log(b) - math.log(a))
            return math.exp((1 - w) * math.log(_TAIL[a][index]) + w * math.log(_TAIL[b][index]))
    return _TAIL[grid[0]][index]


def thresholds(scores: np.ndarray, rate: float) -> tuple[float, float]:
    """Spike and drop thresholds (both positive) for the finite ``scores`` of a series,
    fitted to its ordinary days (`_untouched`)."""
    import numpy as np

    return _fitted(_untouched(scores[np.isfinite(scores)]), rate)


def _untouched(scores: np.ndarray) -> np.ndarray:
    """The scores without those that stand out: fitted at SET_ASIDE_RATE, the scores past
    either threshold set aside, refitted, until none are left past them."""
    for _ in range(MAX_ROUNDS):
        upper, lower = _fitted(scores, SET_ASIDE_RATE)
        inside = (scores < upper) & (scores > -lower)
        if inside.all():
            break
        scores = scores[inside]
    return scores


def _fitted(scores: np.ndarray, rate: float) -> tuple[float, float]:
    """Spike and drop thresholds fitted to all of the (finite) ``scores``."""
    import numpy as np

    normal = normal_threshold(rate)
    if len(scores) < 2 * MIN_SIDE:
        return normal, normal
    centre = float(np.median(scores))
    out = []
    for side in (scores[scores > centre] - centre, centre - scores[scores < centre]):
        if len(side) < MIN_SIDE:
            out.append(normal)
            continue
        # a short series' tail is uncertain: shrink its threshold towards the normal one
        w = len(side) / (len(side) + PRIOR_SIDE)
        out.append(math.exp(w * math.log(side_threshold(side, rate)[0]) + (1 - w) * math.log(normal)))
    return out[0] + centre, out[1] - centre


def shift_needs(past: list[float], need: float, rate: float) -> tuple[float, float]:
    """The median score of an eight-day look-ahead that makes a shift, up and down: at
    least ``need`` (the fixed share of the robust-score threshold), and where the
    series' own look-ahead medians (``past``, out of sample) wander further -- a level
    that drifts for weeks, the page views' seasons -- their robust centre and spread's
    normal quantile at ``rate`` per 1,000 days (half a side). Shifts then page within
    a stated share of the false-alarm rate, on top of spikes and drops, instead of
    without limit (on the dev page views they alone paged 4.0 per 1,000 clean days at
    medium, whose whole rate is 3). A median of eight is close to normal, so a normal
    quantile; a run of days is autocorrelated, so its excursions page fewer times than
    ``rate`` (conservative)."""
    import statistics

    if len(past) < MIN_SHIFT_NULL:
        return need, need
    centre = statistics.median(past)
    spread = 1.4826 * statistics.median([abs(m - centre) for m in past])
    z = statistics.NormalDist().inv_cdf(1 - rate / 2000)
    return max(need, centre + z * spread), max(need, z * spread - centre)
