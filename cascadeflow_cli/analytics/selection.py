"""Choose the forecast by the user's own history: a rolling-origin backtest of every
candidate (`candidates`) on the error the user cares about, the horizon's total.

1. Every candidate runs on the raw and the log scale (the log only where at least
   LOG_SPEND_SHARE of the days have spend) from every origin. Its daily
   forecasts go back to USD (``exp(z) - c`` on the log scale: a median, not a mean).
2. **Calibration.** From each origin, the log ratio of the actual horizon total to the
   forecast one is known once that horizon has passed. Each forecast is multiplied by
   the mean of those ratios (clipped) over the origins completed *before* it, shrunk
   towards a prior (the lognormal mean ``log E[exp(e)]`` of the log scale's residuals).
   Raw-scale forecasts are means already and stay as they are (calibrating them too
   added noise on every synthetic family). So a log-scale model's back-transform is unbiased by what its
   own past errors say, not by a normal assumption, and a model that lags a trend is
   pulled up by its own record. Nothing a forecast uses comes from after its origin.
3. **Score**: the mean absolute log error of the calibrated horizon total over the most
   recent origins. The candidates' forecasts are averaged with weights falling
   exponentially with their score relative to the best one (`backtest_weights`: a
   combination varies less than a single choice, near-ties share); the simple baselines
   are always in the pool, ETS forms only once the history holds ``ETS_WINDOWS`` independent horizons.
   How sharply the weights fall (the temperature), or whether only the few best count,
   equally, is the history's own out-of-sample verdict (`_weighting`): a near-stationary
   series is best served by its one long mean, a noisy one by a wide mix. Past origins'
   combined forecasts use the weights known at each (so the error paths below carry the
   error of the choice too).
4. **Intervals** come from the combination's own backtest errors: each past origin's path
   of actual over forecast cumulative spend, centred on its median at the horizon and
   applied to today's forecast (an error-path bootstrap), widened for the few
   independent windows a short history holds.

With too little history for a backtest at the requested horizon (69 days hold no complete
independent 30-day window past the burn-in), it runs at the longest horizon with one
(a week at least) and stretches the error paths beyond it (their spread around the median
growing like the square root of the horizon: wide, on purpose); a backtest of fewer than
ETS_WINDOWS windows is mostly chance, so its weights are shrunk towards the plain 28-day
mean and seasonal naive by SHORT_PRIOR windows. Pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cascadeflow_cli.analytics.candidates import RUNAWAY, SEASON, Candidate, all_candidates, tamed

if TYPE_CHECKING:
    import numpy as np

MAX_DAYS = 730  # the most recent days a model sees (older ones: another business)
MAX_ORIGINS = 365  # the most recent origins scored and used for intervals
MIN_ORIGINS = 10  # completed origins needed for a backtest at all
MIN_WINDOWS = 1.0  # independent horizon windows needed to choose among methods at all
LOG_SPEND_SHARE = 0.8  # days with spend needed before log-scale candidates compete
MIN_SHORT_HORIZON = 7  # shortest total compared (a week: every weekday in it once)
ETS_WINDOWS = 3.0  # independent horizon windows the backtest needs before ETS competes
SHORT_PRIOR = 1.0  # prior weight of the baselines below, in independent windows (short histories)
SHORT_PRIOR_POOL = ("mean28", "snaive")  # raw scale, equally weighted
TOP = 3  # candidates named in the method
TEMPERATURE = 0.2  # weights fall by e for each fifth of the best score a candidate is worse ...
# ... unless the history prefers another weighting: (temperature, top), where top > 0 keeps
# only the best `top` candidates and an infinite temperature weights them equally (the
# forecast-combination literature's equal weights of the few best, which often beat fitted
# weights). Measured (bench/forecast_backtest.py, offsets 0 and 14 and a second synthetic
# draw): adding the top-3 and top-5 equal mixes moved 13 of 26 set-grids down and 4 up
# (intermittent 27.2 -> 25.4, heavy tails 12.8 -> 11.9 on one other draw; heavy tails
# 16.3 -> 16.9 on the first, the largest loss); on `--backgrounds 1`, 6 of 10 down, 3 up
WEIGHTINGS = ((TEMPERATURE, 0), (0.05, 0), (0.1, 0), (0.4, 0), (math.inf, 3), (math.inf, 5))
MIN_WEIGHT = 0.01  # candidates weighted less than this are left out
SHRINK = 2.0  # prior weight of the calibration, in independent horizon windows
CLIP_RATIO = 1.5  # log ratios beyond this count as this (one odd month must not rule)
PATH_ORIGINS = 20  # full-length error paths needed; fewer: stretch the shorter ones
WIDEN_AT = 0.9
WIDTH_CHECKS = 120  # past origins whose intervals are checked
WIDTH_PRIOR = 0.5  # prior weight of no widening, in independent windows checked
WIDTHS = tuple(1.0 + 0.1 * k for k in range(16))  # interval widening factors tried (up to 2.5)
SHIFT_MIN, SHIFT_MAX = 4, 21  # days a recent level shift must have held (at most: looked back)
SHIFT_SIGMAS = 2.0  # its median log error against the usual one-step spread


@dataclass(frozen=True)
class Choice:
    """Today's calibrated daily forecast (USD) and the error paths to apply to it."""

    daily: np.ndarray  # (days,)
    ratios: np.ndarray  # (paths, days): actual over forecast cumulative spend, per past origin
    method: str
    scores: dict[str, float]  # mean absolute log error of the horizon total, per candidate
    origins: int  # completed origins the backtest scored
    horizon: int  # the horizon it scored (the requested one, or shorter for short history)
    width: float = 1.0  # how much wider than the error paths the interval must be (>= 1)
    scored: np.ndarray | None = None  # the series judged by (its last MAX_DAYS, one-offs cut)
    left_out: tuple[int, ...] = ()  # positions in ``scored`` of one-off days cut (`_one_off`)


def choose(y: np.ndarray, dow0: int, horizon: int, days: int, confidence: float = 0.9) -> Choice | None:
    """Backtest, calibrate and combine for the series ``y`` (USD per day, first day's
    weekday ``dow0``); ``days`` of paths (>= ``horizon``). None: too short to backtest."""
    import numpy as np

    if len(y) > MAX_DAYS:
        dow0 = (dow0 + len(y) - MAX_DAYS) % 7
        y = y[-MAX_DAYS:]
    n = len(y)
    burn = min(28, max(7, n // 3))
    h = min(horizon, n - burn - MIN_ORIGINS)
    if h < MIN_SHORT_HORIZON:
        return None  # 17 days made h zero below: 'unexpected ZeroDivisionError' for any such user
    if (n - burn - h) / h < MIN_WINDOWS:
        # a short history (69 days: under two months past the burn-in) holds no complete
        # independent window of the horizon asked for: the methods are compared on the
        # longest shorter total that has one, and the error paths stretched beyond it
        h = min(h, int((n - burn) / (1 + MIN_WINDOWS)))
    if h < MIN_SHORT_HORIZON:
        return None
    span = max(days, h)
    windows = (n - burn - h) / h  # independent windows of the horizon compared
    if windows < MIN_WINDOWS:
        return None  # no evidence to choose by: the caller's naive estimate
    y, left_out = _one_off(y, burn, h, windows)
    positive = y[y > 0]
    offset = 0.1 * float(np.median(positive))
    z = np.log(y + offset)
    eps = 0.01 * float(np.mean(y))  # USD per day: keeps ratios of empty stretches finite
    pool = all_candidates(tamed(y), dow0, span, log=False, with_ets=windows >= ETS_WINDOWS)
    if float(np.mean(y > 0)) >= LOG_SPEND_SHARE:
        # the log of a series that is empty on many days is two levels (empty and not), no
        # model of the size of spend: its means only add noise to the mix (intermittent
        # family of bench/forecast_backtest.py: 30.4 -> 26.9-27.4% median APE for any share
        # from 0.5 to 0.9; no other set has a series under 0.98)
        pool += all_candidates(z, dow0, span, log=True, with_ets=windows >= ETS_WINDOWS)
    cs = np.concatenate([[0.0], np.cumsum(y)])
    origins = np.arange(n)
    done = origins[(origins >= burn - 1) & (origins + h <= n - 1)]
    actual = cs[done + 1 + h] - cs[done + 1]
    prior_log = _lognormal_prior(z)
    usd, totals, cal_now = [], [], []
    for c in pool:
        u = _back(c, offset)
        calibration, now = _calibration(u[:, :h].sum(axis=1), actual, done, h, n,
                                        prior_log if c.log else 0.0, eps * h, learn=c.log)
        u = u * np.exp(calibration)[:, None]
        usd.append(u)
        totals.append(u[:, :h].sum(axis=1))
        cal_now.append(now)
    recent = done[-MAX_ORIGINS:]
    target = actual[-MAX_ORIGINS:]
    scores = np.array([float(np.mean(np.abs(np.log((target + eps * h) / (t[recent] + eps * h)))))
                       for t in totals])
    errors = np.array([np.abs(np.log((actual + eps * h) / (t[done] + eps * h))) for t in totals])
    weighting, rolling, ok = _weighting(errors, np.array([t[done] for t in totals]), actual, done, h, eps * h)
    weights = backtest_weights(scores, *weighting)
    if windows < ETS_WINDOWS:
        # a backtest of one or two independent windows is mostly chance: its weights are
        # shrunk towards the two baselines, the plain 28-day mean and seasonal
        # naive, equally, by SHORT_PRIOR windows. Towards the mean alone, adexchange's
        # worst series sat at 1.91/1.27/1.62x seasonal naive's median APE (grids offset
        # 0/1/2) and covered 75% on one grid; with both: 1.33/1.22/1.45x, 92/92/88%, median
        # APE 17.3/16.5/18.3 -> 17.7/17.6/16.9% (sample history 10.7/11.0/11.9 -> 10.2/11.5/12.0)
        prior = np.array([c.name in SHORT_PRIOR_POOL and not c.log for c in pool], dtype=float)
        prior /= prior.sum()
        weights = (windows * weights + SHORT_PRIOR * prior) / (windows + SHORT_PRIOR)
    used = np.nonzero(weights >= MIN_WEIGHT)[0]
    weights = weights[used] / weights[used].sum()
    combined = np.tensordot(weights, np.array([usd[i] for i in used]), axes=1)  # (n, span), every origin
    if len(ok):
        # past origins' forecasts as they would have been made then (weights from the
        # scores known by then), so the intervals carry the error of the choice itself
        stack = np.array(usd)[:, done[ok]]  # (candidates, origins, span)
        combined[done[ok]] = np.einsum("oc,cos->os", rolling, stack)
    today = np.tensordot(weights, np.array([_back(pool[i], offset)[-1] * math.exp(cal_now[i])
                                            for i in used]), axes=1)
    order = np.argsort(-weights, kind="stable")[:TOP]
    method = " + ".join(f"{pool[used[i]].label} ({weights[i]:.0%})" for i in order)
    if len(used) > TOP:
        method += f" + {len(used) - TOP} more"
    # re-basing to a recent level shift is kept only if, taken whole (the forecast from
    # before the shift scaled by all of it), it does no worse on this history: a test of
    # whether this series' shifts persist (on noisy page views they mostly do not). What
    # is applied is only the part the combination has not taken up already: applied
    # whole, a 15x jump five and eight days before the origin was forecast +157% and
    # +302% (sample history's dave); tested in that partial form, it was kept on noise
    # too (dev page views 22.2 -> 24.7% median APE, bench/forecast_backtest.py)
    shifts = _shift_factors(y, combined, eps, partial=False)
    rebased = combined * np.exp(shifts)[:, None]
    plain_error = _total_error(combined, actual, done, h, eps)
    if shifts[-1] != 0 and _total_error(rebased, actual, done, h, eps) <= plain_error:
        shifts = _shift_factors(y, combined, eps)
        combined = combined * np.exp(shifts)[:, None]
        if shifts[-1] != 0:
            today = today * math.exp(shifts[-1])
            method += "; re-based to a level shift of the last days"
    ratios = _error_paths(y, combined, done, h, span, eps)
    # centred: the median total is the combination's own (calibrated) forecast. The paths
    # carry the spread of past errors, not their median as a second bias correction: over
    # a few independent windows that median is mostly noise (it moved the centre the wrong
    # way on every set of bench/forecast_backtest.py)
    middle = float(np.median(ratios[:, h - 1]))
    if middle > 0:
        ratios = ratios / middle
    predicted = combined[done, :h].sum(axis=1)
    errors_now = np.log((actual + eps * h) / (predicted + eps * h))
    # checked on the origins combined as they would have been then, when there are enough
    # of them: the others' weights had seen their errors (in-sample: too narrow a verdict)
    width = _width(errors_now[ok] if len(ok) >= 2 * h else errors_now, h, confidence)
    named = {pool[i].label: float(scores[i]) for i in range(len(pool))}
    return Choice(today[:days], ratios[:, :days], f"backtest-weighted mean of {method}", named,
                  len(recent), h, width, y, left_out)


def _one_off(y: np.ndarray, burn: int, h: int, windows: float) -> tuple[np.ndarray, tuple[int, ...]]:
    """The series the backtest judges by, and the positions of the runaway days left out
    of it (`tamed`'s, each made a usual day): none, unless they are rarer than one in each
    independent window compared and one of them is worth over RUNAWAY usual windows (the
    median ``h``-day total without them). Such a day rules every window that holds it: on
    a short history those were most windows, the error paths were centred on it and the
    usual month read as their low tail ($1.10 a day and one $10,000 day 30 days back: a
    90% lower bound of $0.00 under a median of $59.67); elsewhere its ratio of 300 sat in
    the error paths' tail, which the small-sample widening raised to its cube (the same
    day two days back: a 90% bound of $9.7 trillion). Cut to the cap (ten usual days) it
    still sat in most windows: a lower bound of $17 for that month of $33.

    A heavy day of a real series is worth a few windows at most (over every cutoff of
    bench/forecast_backtest.py, offsets 0 and 14, three draws, where runaway days are
    rarer than the windows: 5.1, the dev page views' peak), and stays in. Also gated on
    the median past window holding such days (over twice itself without them), it fired
    on a 28-day heavy-tailed window (an $81 day among $4 ones) and halved its forecast
    of a month that came in at $340: heavy days that recur."""
    import numpy as np

    runaway = np.nonzero(y > tamed(y))[0]
    # rarer than one in each window: of the whole history's windows, not only those
    # compared (two $10,000 days in 90 of $1.10, 1.07 windows compared of 3, stayed in:
    # a 90% range of $0-$412, or an upper bound of $54 million with one 10 days back)
    if not 0 < len(runaway) < max(windows, len(y) / h):
        return y, ()
    day = float(np.median(y[y > 0]))
    usual = y.copy()
    usual[runaway] = day
    cu = np.concatenate([[0.0], np.cumsum(usual)])
    starts = np.arange(burn, len(y) - h + 1)
    if float(np.max(y[runaway])) - day <= RUNAWAY * float(np.median(cu[starts + h] - cu[starts])):
        return y, ()
    return usual, tuple(int(i) for i in runaway)


def backtest_weights(scores: np.ndarray, temperature: float = TEMPERATURE, top: int = 0) -> np.ndarray:
    """Combination weights from the backtest scores: ``exp(-(s - best) / (T best))``. The
    temperature is relative to the best score, so the weighting means the same on a calm
    series (small errors) and a wild one: candidates within a few tenths of the best
    error share the forecast, clearly worse ones fade out. Softer than keeping the best
    few: a choice among near-ties made on a short or noisy backtest is mostly chance, and
    averaging near-ties does not pay for it. ``top`` > 0: only the best ``top`` candidates
    (ties by position) have weight; an infinite temperature weights those equally."""
    import numpy as np

    keep = np.ones(scores.shape, dtype=bool)
    if 0 < top < scores.shape[-1]:
        ranks = np.argsort(np.argsort(scores, axis=-1, kind="stable"), axis=-1, kind="stable")
        keep = ranks < top
    if not math.isfinite(temperature):
        weights = keep.astype(float)
    else:
        best = np.min(scores, axis=-1, keepdims=True)
        weights = np.where(keep, np.exp(-(scores - best) / (temperature * np.maximum(best, 1e-9))), 0.0)
    return weights / weights.sum(axis=-1, keepdims=True)


def _weighting(errors: np.ndarray, totals: np.ndarray, actual: np.ndarray, done: np.ndarray, h: int,
               floor: float) -> tuple[tuple[float, int], np.ndarray, np.ndarray]:
    """The combination's weighting (temperature, top), by the history's own out-of-sample
    verdict: at each origin, every candidate's score over the origins completed before it
    (the last MAX_ORIGINS of them) weights the candidates by each of WEIGHTINGS; the one
    whose combined horizon totals erred least over the recent origins wins. Without an
    independent horizon's worth of such origins (a short history), the default.
    ``errors`` and ``totals``: (candidates, origins), absolute log errors and forecasts.
    Returns the weighting, its weights at those origins (origins, candidates) and their
    positions in ``done``."""
    import numpy as np

    cum = np.concatenate([np.zeros((errors.shape[0], 1)), np.cumsum(errors, axis=1)], axis=1)
    ends = np.searchsorted(done, done - h, side="right")  # origins j with done[j] + h <= done[i]
    starts = np.maximum(ends - MAX_ORIGINS, 0)
    # judged where about as much was known as is now (fewer: a noisier choice than today's)
    known = max(MIN_ORIGINS, min(len(done), MAX_ORIGINS) // 2)
    ok = np.nonzero(ends - starts >= known)[0][-MAX_ORIGINS:]
    if len(ok) < max(h, MIN_ORIGINS):
        return WEIGHTINGS[0], np.zeros((0, errors.shape[0])), ok[:0]
    rolling = ((cum[:, ends[ok]] - cum[:, starts[ok]]) / (ends[ok] - starts[ok])).T  # (origins, candidates)
    target = actual[ok] + floor
    best, chosen, chosen_w = math.inf, WEIGHTINGS[0], rolling
    for weighting in WEIGHTINGS:  # the default first: it wins a tie
        w = backtest_weights(rolling, *weighting)
        combined = np.sum(w * totals[:, ok].T, axis=1)
        error = float(np.mean(np.abs(np.log(target / (combined + floor)))))
        if error < best:
            best, chosen, chosen_w = error, weighting, w
    return chosen, chosen_w, ok


def _width(errors: np.ndarray, h: int, confidence: float) -> float:
    """How much the interval from past errors must be widened to have held ``confidence``
    of the time on this history: at each of the recent origins, the interval from the
    errors known by then (spread around their median, times a factor) is checked against
    what came; the smallest factor (1 to WIDTH_MAX) that covered often enough. This is the
    history's own verdict on how much its past errors understate the next one's."""
    import numpy as np

    lo_q, hi_q = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    rows = []
    step = max(1, len(errors) // WIDTH_CHECKS)  # every origin's interval costs a quantile
    for i in range(len(errors) - 1, -1, -step):
        past = errors[: max(i - h + 1, 0)]  # origins whose horizon had ended by origin i
        if len(past) < max(MIN_ORIGINS, min(len(errors), MAX_ORIGINS) // 2):
            continue  # judged only where about as much was known as is now
        lo, centre, hi = np.quantile(past[-MAX_ORIGINS:], [lo_q, 0.5, hi_q]).tolist()
        rows.append((errors[i] - centre, lo - centre, hi - centre))
    if len(rows) < MIN_ORIGINS:
        return 1.0
    e, lo, hi = (np.array(c) for c in zip(*rows, strict=True))
    found = WIDTHS[-1]
    for factor in WIDTHS:
        if np.mean((e >= factor * lo) & (e <= factor * hi)) >= confidence:
            found = factor
            break
    # the verdict of a few independent horizons is itself mostly chance (on 150 days it
    # ranged from 1.0 to 2.5 for one known process): shrunk towards no widening, by
    # WIDTH_PRIOR windows checked (the calibration's SHRINK left three sets of
    # bench/forecast_backtest.py at 84-85% coverage; none at all, 97% on a known process)
    checked = len(rows) * step / h
    return float(1.0 + (found - 1.0) * checked / (checked + WIDTH_PRIOR))


def _total_error(forecasts: np.ndarray, actual: np.ndarray, done: np.ndarray, h: int, eps: float) -> float:
    """Mean absolute log error of the h-day total over the most recent origins."""
    import numpy as np

    recent = done[-MAX_ORIGINS:]
    predicted = forecasts[recent, :h].sum(axis=1)
    return float(np.mean(np.abs(np.log((actual[-MAX_ORIGINS:] + eps * h) / (predicted + eps * h)))))


def _back(candidate: Candidate, offset: float) -> np.ndarray:
    """A candidate's forecasts in USD per day (uncalibrated), from every origin."""
    import numpy as np

    f = candidate.forecasts
    return np.maximum(np.exp(f) - offset, 0.0) if candidate.log else np.maximum(f, 0.0)


def _shift_factors(y: np.ndarray, forecasts: np.ndarray, eps: float, *, partial: bool = True) -> np.ndarray:
    """Per origin, the log factor that re-bases its forecast to a level shift of the last
    days (0 without one): the last ``m`` days (SHIFT_MAX down to SHIFT_MIN) all on one
    side of the forecast made before them, their median log error beyond SHIFT_SIGMAS of
    the usual one-step error. ``partial``: less what the forecast made at the origin has
    moved towards it already (0 where it moved past). Only days up to the origin are used."""
    import numpy as np

    n, span = forecasts.shape
    out = np.zeros(n)
    one_step = np.log((y[1:] + eps) / (forecasts[:-1, 0] + eps))
    if len(one_step) < 4 * SHIFT_MAX:
        return out
    sigma = 1.4826 * float(np.median(np.abs(one_step - np.median(one_step))))
    if sigma <= 0:
        return out
    found = np.zeros(n, dtype=bool)
    for m in range(min(SHIFT_MAX, span), SHIFT_MIN - 1, -1):
        t = np.arange(m, n)  # origins with m days after an earlier origin t - m
        j = np.arange(m)
        seen = y[(t - m + 1)[:, None] + j[None, :]]
        e = np.log((seen + eps) / (forecasts[(t - m)[:, None], j[None, :]] + eps))
        middle = np.median(e, axis=1)
        hit = (np.all(e > 0, axis=1) | np.all(e < 0, axis=1)) & (np.abs(middle) > SHIFT_SIGMAS * sigma)
        hit &= ~found[t]
        # partial: less what the forecast made at t (which has seen those m days) has
        # moved already, over the same days
        width = min(SEASON, span - m)
        if width > 0 and partial:
            moved = np.log((forecasts[t, :width].sum(axis=1) + eps)
                           / (forecasts[t - m, m:m + width].sum(axis=1) + eps))
            rest = middle - moved
            middle = np.where(rest * middle > 0, rest, 0.0)  # moved past it: nothing left to add
        out[t[hit]] = middle[hit]
        found[t[hit]] = True
    return out


def _lognormal_prior(z: np.ndarray) -> float:
    """log E[exp(e)] of the log series' departures from its four-week mean: what a
    lognormal back-transform would add, the calibration's starting point."""
    import numpy as np

    if len(z) < 14:
        return 0.0
    cs = np.concatenate([[0.0], np.cumsum(z)])
    t = np.arange(7, len(z))
    lo = np.maximum(t - 28, 0)
    e = z[t] - (cs[t] - cs[lo]) / (t - lo)
    e = e - e.mean()
    return float(np.log(np.mean(np.exp(np.clip(e, -5, 5)))))


def _calibration(predicted: np.ndarray, actual: np.ndarray, done: np.ndarray, h: int, n: int,
                 prior: float, eps: float, learn: bool = True) -> tuple[np.ndarray, float]:
    """Per origin, the log factor its forecast is multiplied by: the shrunk mean of the
    clipped log ratios actual / forecast over the origins whose horizon had ended by
    then (within the last MAX_ORIGINS of them); and the factor for a forecast made now."""
    import numpy as np

    if not learn:
        return np.full(n, prior), prior
    r = np.zeros(n)
    known = np.zeros(n)
    r[done] = np.clip(np.log((actual + eps) / (predicted[done] + eps)), -CLIP_RATIO, CLIP_RATIO)
    known[done] = 1.0
    cr = np.concatenate([[0.0], np.cumsum(r)])
    ck = np.concatenate([[0.0], np.cumsum(known)])

    def at(t: np.ndarray) -> np.ndarray:
        # origins t' with t' + h <= t, i.e. t' <= t - h; within the last MAX_ORIGINS of them
        hi = np.clip(t - h + 1, 0, n)
        lo = np.clip(hi - MAX_ORIGINS, 0, n)
        windows = (ck[hi] - ck[lo]) / h  # overlapping origins: about one independent per horizon
        mean = (cr[hi] - cr[lo]) / np.maximum(ck[hi] - ck[lo], 1.0)
        return (windows * mean + SHRINK * prior) / (windows + SHRINK)

    calibration = at(np.arange(n))
    now = float(at(np.array([n - 1]))[0])
    return calibration, now


def _error_paths(y: np.ndarray, forecasts: np.ndarray, done: np.ndarray, h: int, span: int,
                 eps: float) -> np.ndarray:
    """Per past origin, actual over forecast cumulative spend for 1..span days ahead.
    Origins with the whole span observed are used when there are PATH_ORIGINS of them;
    else the paths end at ``h`` and go on with the log ratio at ``h`` stretched by
    sqrt(k / h) (errors of a level grow with the horizon)."""
    import numpy as np

    n = len(y)
    cs = np.concatenate([[0.0], np.cumsum(y)])
    full = done[done + span <= n - 1][-MAX_ORIGINS:]
    k = np.arange(1, span + 1)
    floor = eps * k
    if len(full) >= PATH_ORIGINS:
        cum_actual = cs[full[:, None] + 1 + k[None, :]] - cs[full[:, None] + 1]
        cum_forecast = np.cumsum(forecasts[full], axis=1)
        return (cum_actual + floor) / (cum_forecast + floor)
    part = done[-MAX_ORIGINS:]
    kh = k[:h]
    cum_actual = cs[part[:, None] + 1 + kh[None, :]] - cs[part[:, None] + 1]
    cum_forecast = np.cumsum(forecasts[part, :h], axis=1)
    log_ratio = np.log((cum_actual + floor[:h]) / (cum_forecast + floor[:h]))
    if span > h:
        # the spread around the median grows, not the median itself: stretching the raw
        # log ratios also stretched their median (a 30-day total from 9-day paths sat 16-21%
        # under the combination's own forecast on adexchange, after the centring below)
        middle = float(np.median(log_ratio[:, -1]))
        stretch = middle + np.sqrt(k[h:] / h)[None, :] * (log_ratio[:, -1:] - middle)
        log_ratio = np.concatenate([log_ratio, stretch], axis=1)
    return np.exp(log_ratio)
