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

The t quantiles come from analytics/student_t.py (pure Python, scipy's to 1e-5; nothing
here needs scipy at run time).
"""

from __future__ import annotations

import math
from functools import cache
from itertools import pairwise
from typing import TYPE_CHECKING

from cascadeflow_cli.analytics.student_t import two_sided_isf

if TYPE_CHECKING:
    import numpy as np

# false alarms per 1,000 ordinary days, per sensitivity
RATES = {"low": 1.0, "medium": 3.0, "high": 10.0}
MIN_SIDE = 40  # scores on a side needed to fit it at all (fewer: the normal threshold)
PRIOR_SIDE = 60  # the normal threshold weighs as much as this many scores of a side
MIN_DF = 2.0  # tails no heavier than a t with 2 degrees of freedom (else a series goes blind)
SET_ASIDE_RATE = 3.0  # the rate whose thresholds set events aside before the fit (medium's)
MAX_ROUNDS = 10  # rounds of setting aside (it settles in two or three)
MIN_RECURRING = 3  # days, RECURRING_GAP apart, a side needs to be a regular pattern (`_recurring`)
RECURRING_GAP = 2
MIN_RELATIVE = 0.1  # a regular side's spread: at least this share of its median score (`_recurring`)
MIN_SHIFT_NULL = 56  # look-ahead medians (eight weeks of them) before they set the shift need

# the degrees of freedom the tail shape is read on (interpolated in log df between them)
DF_GRID = (1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.5, 10.0, 12.5, 15.0, 20.0,
           30.0, 50.0, 100.0, 1e6)  # 1e6: the normal
FIT_LEVELS = (0.9, 0.95)  # of |scores|: the highest with FIT_ABOVE points above it (0.95: still
# robust to a twentieth of the days being real anomalies or an undetected shift)
FIT_ABOVE = 10
EMPIRICAL_ABOVE = 5  # scores of a side past its rate's share before that quantile is its own
BOOTSTRAP = 100  # resamples of a side that measure its tail ratio's sampling error
LIGHTER_BY = 3.0  # standard errors a side's tail ratio must lie under the normal's: bounded


def normal_threshold(rate: float) -> float:
    """The two-sided normal threshold of a rate per 1,000 days (low 3.29, medium 2.97,
    high 2.58): the scale shifts are judged on."""
    return two_sided_isf(rate / 1000, math.inf)


def prior_threshold(rate: float, df: float) -> float:
    """The threshold of a rate per 1,000 days for scores whose noise scale was read from
    residuals worth ``df`` (`anomaly.SPREAD_EFFICIENCY` x their number): a t's (a new
    user's 40 days: df about 15, medium 3.5 where the normal's is 2.97), the normal's as
    the days grow."""
    return two_sided_isf(rate / 1000, max(df, 1.0))


def side_threshold(magnitudes: np.ndarray, rate: float, share: float = 0.5) -> tuple[float, float]:
    """The threshold of one side (magnitudes of its scores) for ``rate`` false alarms per
    1,000 days, and the t's degrees of freedom fitted to it.

    ``share`` is the side's share of all the scores: half, unless many tie at the centre
    (intermittent spend: 114 of 702 above it on one series), and the side carries its
    whole half of the rate, so each of its scores may pass more often (here 3x).

    The tail is read as far out as the side has FIT_ABOVE points beyond (a long series:
    its 95th percentile, so the fit extrapolates less; a short one: its 90th), and the
    t's scale from the side's median. Unless the side is bounded -- that percentile over
    the median under the normal's by more than LIGHTER_BY bootstrap standard errors, a
    tail lighter than any t's (intermittent spend: 2.0 against the normal's 2.9 on 300
    scores) -- then a normal goes through the median and the percentile, location and
    scale, and extrapolates from there: a scale alone put intermittent spikes' threshold
    (+6.2) above every ordinary score (+3.2 to +3.9 at most), and it paged 1.0 per 1,000
    at medium, all of them shifts (now 2.7).
    """
    import numpy as np

    p = _within(rate, share)
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
    ratios = _ratios(FIT_LEVELS[level - 1])
    df = ratios[0][0] if ratio >= ratios[0][1] else ratios[-1][0]
    for (df_a, r_a), (df_b, r_b) in pairwise(ratios):
        if r_b <= ratio <= r_a:
            w = math.log(r_a / ratio) / math.log(r_a / r_b)  # 0 at df_a, 1 at df_b
            df = math.exp((1 - w) * math.log(df_a) + w * math.log(df_b))
            break
    df = max(df, MIN_DF)
    lighter = math.log(ratios[-1][1] / ratio)
    if lighter > 0 and lighter > LIGHTER_BY * _log_ratio_error(magnitudes, FIT_LEVELS[level - 1]):
        # bounded: a normal through the side's median and percentile (location and scale)
        z_median, z_upper = two_sided_isf(0.5, df), two_sided_isf(1 - FIT_LEVELS[level - 1], df)
        return upper + (upper - median) / (z_upper - z_median) * (two_sided_isf(p, df) - z_upper), df
    return median / two_sided_isf(0.5, df) * two_sided_isf(p, df), df


@cache
def _within(rate: float, share: float) -> float:
    """P(magnitude > threshold) within a side holding ``share`` of the scores, for half of
    ``rate`` per 1,000 of them."""
    return min(rate / 2000 / max(share, 1e-9), 0.5)


def _ratios(level: float) -> list[tuple[float, float]]:
    """(df, the ``level`` percentile of |t| over its median) along DF_GRID, falling."""
    return [(df, two_sided_isf(1 - level, df) / two_sided_isf(0.5, df)) for df in DF_GRID]


def _log_ratio_error(magnitudes: np.ndarray, level: float) -> float:
    """The bootstrap standard error of log(percentile at ``level`` / median) of the
    magnitudes (a fixed seed: the same scores give the same thresholds)."""
    import numpy as np

    rows = np.random.default_rng(0).integers(0, len(magnitudes), (BOOTSTRAP, len(magnitudes)))
    median, upper = np.quantile(magnitudes[rows], [0.5, level], axis=1)
    ok = median > 0
    return float(np.std(np.log(upper[ok] / median[ok]))) if ok.sum() > 2 else math.inf


def thresholds(scores: np.ndarray, rate: float, *, pattern: np.ndarray | None = None,
               df: float = math.inf) -> tuple[float, float]:
    """Spike and drop thresholds (both positive) for the finite ``scores`` of a series,
    fitted to its ordinary days (`_untouched`). ``pattern``: the scores of every day,
    the unjudged first weeks too, where a regular pattern is looked for (`_recurring`;
    default: ``scores``): on a short history its first weeks hold most of its days.
    ``df``: how well the scores' noise scale is known (`prior_threshold`)."""
    import numpy as np

    finite = np.isfinite(scores)
    upper, lower = _fitted(_untouched(scores[finite], df), rate, everything=scores[finite], df=df)
    pattern = scores if pattern is None else pattern
    seen = np.isfinite(pattern)
    days, normal = np.nonzero(seen)[0], normal_threshold(rate)
    regular_up = _recurring(pattern[seen], days, normal)
    regular_down = _recurring(-pattern[seen], days, normal)
    return (upper if regular_up is None else regular_up), (lower if regular_down is None else regular_down)


def _untouched(scores: np.ndarray, df: float = math.inf) -> np.ndarray:
    """The scores without those that stand out: fitted at SET_ASIDE_RATE, the scores past
    either threshold set aside, refitted, until none are left past them."""
    for _ in range(MAX_ROUNDS):
        upper, lower = _fitted(scores, SET_ASIDE_RATE, df=df)
        inside = (scores < upper) & (scores > -lower)
        if inside.all():
            break
        scores = scores[inside]
    return scores


def _fitted(scores: np.ndarray, rate: float, *, everything: np.ndarray | None = None,
            df: float = math.inf) -> tuple[float, float]:
    """Spike and drop thresholds fitted to all of the (finite) ``scores``. With
    ``everything`` (the final fit: the scores before any were set aside), a side that has
    EMPIRICAL_ABOVE of them past the rate's share takes its own quantile there instead: no
    extrapolation needed (the dev page views' 1,450 scores a side, at high). Of all the
    scores, not only the untouched ones: else the days set aside pass it on top of the
    rate's share (on 3,000 scores of a t with 2.5 degrees of freedom, 8.5 a side per 1,000
    at high where 5 are stated). Too few scores for a fit: `prior_threshold` at ``df``
    (the prior a longer fit is shrunk toward stays the normal's: as a t's it moved every
    long set of the bench and cost the 120-day sample history 3 of its 12 drops found)."""
    import numpy as np

    normal = normal_threshold(rate)
    if len(scores) < 2 * MIN_SIDE:
        prior = prior_threshold(rate, df)
        return prior, prior
    centre = float(np.median(scores))
    out = []
    for sign in (1.0, -1.0):
        side = sign * (scores - centre)
        side = side[side > 0]
        if len(side) < MIN_SIDE:
            out.append(normal)
            continue
        own = None if everything is None else sign * (everything - centre)
        own = None if own is None else own[own > 0]
        if own is not None and len(own) * _within(rate, len(own) / len(everything)) >= EMPIRICAL_ABOVE:
            out.append(float(np.quantile(own, 1 - _within(rate, len(own) / len(everything)))))
            continue
        # a short series' tail is uncertain: shrink its threshold towards the normal one
        w = len(side) / (len(side) + PRIOR_SIDE)
        fitted = side_threshold(side, rate, len(side) / len(scores))[0]
        out.append(math.exp(w * math.log(fitted) + (1 - w) * math.log(normal)))
    return out[0] + centre, out[1] - centre


def _recurring(scores: np.ndarray, days: np.ndarray, normal: float) -> float | None:
    """The threshold of a side (``scores`` signed so that it is positive, ``days`` their
    positions) that is a regular pattern, else None. Regular: most days tie at zero and
    the side's typical score is past the most sensitive rate's normal threshold (whether
    the series has a pattern does not depend on the rate asked: with the rate's own, a
    side of scores about 3.0 was ordinary at high and low but paged at medium), on
    MIN_RECURRING days at least
    RECURRING_GAP apart ($5 every three weeks, $0 between: a residual spread of zero,
    every $5 day scored +91 and paged; not one burst of three days). Those scores are the
    series' ordinary spend days, so the side is judged among them: their median plus the
    normal threshold times their robust spread (at least MIN_RELATIVE of the median, a
    tenth: identical days have none), widened by 1/sqrt(n) for being read from n of them."""
    import numpy as np

    up = scores > 0
    side, where = scores[up], days[up]
    if len(side) < MIN_RECURRING or float(np.median(side)) <= normal_threshold(max(RATES.values())):
        return None
    if int(np.sum(np.diff(where) >= RECURRING_GAP)) + 1 < MIN_RECURRING:
        return None
    median = float(np.median(side))
    spread = max(1.4826 * float(np.median(np.abs(side - median))), MIN_RELATIVE * median)
    return median + normal * spread * (1 + 1 / math.sqrt(len(side)))


def shift_needs(past: list[float], need: float, rate: float, *, early: list[float] | None = None,
                run: int = 8, most: float | None = None) -> tuple[float, float]:
    """The median score of an eight-day look-ahead that makes a shift, up and down: at
    least ``need`` (the fixed share of the robust-score threshold), and where the
    series' own look-ahead medians (``past``, out of sample) wander further -- a level
    that drifts for weeks, the page views' seasons -- their robust centre and spread's
    normal quantile at ``rate`` per 1,000 days (half a side). Shifts then page within
    a stated share of the false-alarm rate, on top of spikes and drops, instead of
    without limit (on the dev page views they alone paged 4.0 per 1,000 clean days at
    medium, whose whole rate is 3). A median of eight is close to normal, so a normal
    quantile; a run of days is autocorrelated, so its excursions page fewer times than
    ``rate`` (conservative).

    Until there are MIN_SHIFT_NULL of them, ``early`` (the same statistic on the
    baseline window's own stretches, `anomaly._window_runs`) joins them, and the
    quantile is a predictive t's: ``run`` overlapping medians are about one independent
    one, so n of them know the spread to n / run degrees of freedom, and a fixed need
    held shifts to no rate at all (a 69-day ad-exchange series: 4 of its 7 false
    alarms at high, 17 per 1,000 of shifts alone, on days 31-59 where the level grew
    25-50%). That quantile is huge on a few weeks of history, so it is capped at
    ``most`` (a new user's x3 shift is still seen)."""
    import statistics

    if len(past) >= MIN_SHIFT_NULL:
        z = statistics.NormalDist().inv_cdf(1 - rate / 2000)
        return _beyond(past, z, need, math.inf)
    if early is None:
        return need, need
    most = math.inf if most is None else max(most, need)
    past = past + early
    if len(past) < 2:  # nothing known of the series yet: the cap
        return (most, most) if math.isfinite(most) else (need, need)
    n_eff = len(past) / run
    z = two_sided_isf(rate / 1000, max(n_eff, 1.0)) * math.sqrt(1 + 1 / n_eff)
    return _beyond(past, z, need, most)


def _beyond(past: list[float], z: float, need: float, most: float) -> tuple[float, float]:
    """Up and down: the robust centre of ``past`` plus (minus) ``z`` robust spreads, at
    least ``need`` and at most ``most``."""
    import statistics

    centre = statistics.median(past)
    spread = 1.4826 * statistics.median([abs(m - centre) for m in past])
    return (min(max(need, centre + z * spread), most), min(max(need, z * spread - centre), most))
