"""The forecasting methods a user's own history chooses from, each run from every origin.

A candidate maps a daily series ``x`` (spend, or ``log(spend + c)``) to ``F[t, k]``: its
forecast of ``x[t + 1 + k]`` made after observing ``x[0..t]``, for every origin ``t`` at
once (so a rolling-origin backtest costs one pass, not one fit per origin). Each
candidate is run on both scales; `selection` back-transforms and calibrates them.

* ``mean{w}``: the mean of the last ``w`` days (the "last 28 days' mean x 30" baseline is
  ``mean28`` on the raw scale; ``mean365`` and ``mean730``, all days up to a year or two:
  the forecast of a series whose level does not move, such as steady intermittent
  spend); 14, 56 and 730 days too once the backtest is long (then a window longer than
  the history is the mean of all of it, and only one such window competes);
* ``snaive``: seasonal naive, each weekday as it was last week;
* ``snaive4``: each weekday as the mean of its last four (seasonal naive, averaged);
* ``ETS(...)``: exponential smoothing of level, damped trend and weekly season, at a few
  fixed smoothing rates (the backtest is the fit: choosing among them by the error of the
  horizon total is what a parameter search on that criterion would do, without its cost).
  State updates use residuals clipped at 3 robust standard deviations, so one runaway day
  does not move the level.
* ``TSB``: Teunter-Syntetos-Babai for intermittent spend (many days without any): the
  probability that a day has spend and the size of a day that has, each smoothed
  (the probability every day, the size on days with spend), forecast their product. On a
  series that spends every day it is a simple exponential smoothing; on one that spends
  one day in five it does not sink to zero after each quiet day the way a level does.
  Given the weekday shape, as the means are.
  Raw scale only (the log of a mostly-empty series is two levels, not a size).

Pure numpy, imported inside the functions (the CLI's start-up stays light).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

SEASON = 7
CLIP_SIGMAS = 3.0
MEAN_WINDOWS = (7, 28, 91, 365)
# finer windows (and all the days a model sees, MAX_DAYS of `selection`), once the backtest
# is long enough to choose among them (with the ETS forms): on 69-day histories they took
# the interval's coverage on the ad-exchange series from 92% to 71-79%
MORE_WINDOWS = (14, 56, 730)
RUNAWAY = 10.0  # a day over this many median days is a runaway one (raw-scale candidates)
TSB_RATES = ((0.02, 0.05), (0.05, 0.1), (0.1, 0.2))  # (probability, size) smoothing rates


@dataclass(frozen=True)
class Ets:
    """Smoothing rates of one ETS form (beta/phi 0: no trend; gamma 0: no season)."""

    alpha: float
    beta: float = 0.0
    phi: float = 0.0
    gamma: float = 0.0

    @property
    def name(self) -> str:
        trend = "Ad" if self.phi else "N"
        season = "A" if self.gamma else "N"
        text = f"ETS(A,{trend},{season}) alpha={self.alpha:g}"
        if self.phi:
            text += f" beta={self.beta:g} phi={self.phi:g}"
        if self.gamma:
            text += f" gamma={self.gamma:g}"
        return text


ETS_GRID = (
    Ets(0.03), Ets(0.1), Ets(0.3),
    Ets(0.05, 0.005, 0.95), Ets(0.2, 0.02, 0.9),
    Ets(0.05, gamma=0.05), Ets(0.2, gamma=0.1),
    Ets(0.1, 0.01, 0.95, 0.05),
)


@dataclass(frozen=True)
class Candidate:
    """One method on one scale, with its forecasts from every origin (``F[t, k]`` on the
    candidate's scale)."""

    name: str
    log: bool
    simple: bool  # a baseline that needs no history to fit (always in the pool)
    forecasts: np.ndarray

    @property
    def label(self) -> str:
        return f"{self.name} on {'log' if self.log else 'raw'} spend"


def tamed(y: np.ndarray) -> np.ndarray:
    """The raw series with runaway days (over RUNAWAY times the median day with spend)
    cut to that: a raw-scale mean would carry a one-off 40x day into every forecast day
    of the next months, and its horizon is too recent for the backtest to say so. Heavy
    but ordinary days stay as they are."""
    import numpy as np

    positive = y[y > 0]
    return np.minimum(y, RUNAWAY * float(np.median(positive))) if len(positive) else y


def all_candidates(x: np.ndarray, dow0: int, days: int, *, log: bool, with_ets: bool) -> list[Candidate]:
    """Every candidate on the series ``x`` (first day's weekday ``dow0``), ``days`` ahead."""
    shape = weekday_shape(x, days, log=log)
    windows = MEAN_WINDOWS
    if with_ets:
        # a window longer than the history is the mean of all of it: one such window only
        # (on 200 days, mean365 and mean730 would be two copies, twice its weight). The
        # short pool keeps its four (measured: dropping its copy of the all-days mean moved
        # adexchange 17.3 -> 18.1% and the sample history 10.7 -> 11.0% median APE)
        every = sorted(MEAN_WINDOWS + MORE_WINDOWS)
        windows = tuple(w for i, w in enumerate(every) if i == 0 or every[i - 1] < len(x))
    out = [Candidate(f"mean{w}", log, True, _shaped(mean_forecasts(x, w, days), shape, log))
           for w in windows]
    out.append(Candidate("snaive", log, True, snaive_forecasts(x, days)))
    out.append(Candidate("snaive4", log, True, snaive4_forecasts(x, days)))
    if with_ets:
        for form, forecasts in zip(ETS_GRID, ets_forecasts(x, dow0, days, ETS_GRID), strict=True):
            out.append(Candidate(form.name, log, False, forecasts))
        if not log:
            for (a_p, a_z), forecasts in zip(TSB_RATES, tsb_forecasts(x, days, TSB_RATES), strict=True):
                out.append(Candidate(f"TSB p={a_p:g} size={a_z:g}", log, False,
                                     _shaped(forecasts, shape, log)))
    return out


def tsb_forecasts(x: np.ndarray, days: int, rates: tuple[tuple[float, float], ...]) -> list[np.ndarray]:
    """TSB from every origin, vectorised over ``rates`` (probability, size): flat
    forecasts of probability x size. Starts from the first four weeks' share of days with
    spend and their median size (a single runaway day does not set the size)."""
    import numpy as np

    n = len(x)
    a_p = np.array([r[0] for r in rates])
    a_z = np.array([r[1] for r in rates])
    head = x[: min(n, 4 * SEASON)]
    spent = head[head > 0]
    prob = np.full(len(rates), len(spent) / max(len(head), 1))
    size = np.full(len(rates), float(np.median(spent)) if len(spent) else 0.0)
    out = np.empty((n, len(rates)))
    for t in range(n):
        hit = x[t] > 0
        prob += a_p * (float(hit) - prob)
        if hit:
            size += a_z * (x[t] - size)
        out[t] = prob * size
    return [np.repeat(out[:, i, None], days, axis=1) for i in range(len(rates))]


def mean_forecasts(x: np.ndarray, window: int, days: int) -> np.ndarray:
    """The mean of the last ``window`` days (all days so far where fewer), flat."""
    import numpy as np

    n = len(x)
    cs = np.concatenate([[0.0], np.cumsum(x)])
    t = np.arange(n)
    lo = np.maximum(t + 1 - window, 0)
    means = (cs[t + 1] - cs[lo]) / (t + 1 - lo)
    return np.repeat(means[:, None], days, axis=1)


def weekday_shape(x: np.ndarray, days: int, *, log: bool) -> np.ndarray:
    """Per origin, each future day's weekday effect over the last eight weeks: a ratio
    to the mean on the raw scale (a difference on the log scale), so a flat mean gets the
    week's shape without changing a whole week's total."""
    import numpy as np

    weekday = snaive4_forecasts(x, days, span=8 * SEASON)
    overall = mean_forecasts(x, 8 * SEASON, days)
    if log:
        return weekday - overall
    return np.where(overall > 0, weekday / np.where(overall > 0, overall, 1.0), 1.0)


def _shaped(flat: np.ndarray, shape: np.ndarray, log: bool) -> np.ndarray:
    return flat + shape if log else flat * shape


def snaive_forecasts(x: np.ndarray, days: int) -> np.ndarray:
    """Each future day as the same weekday last week (before a week is seen: the mean)."""
    import numpy as np

    n = len(x)
    t = np.arange(n)[:, None]
    k = np.arange(days)[None, :]
    source = t - 6 + (k % SEASON)
    fallback = mean_forecasts(x, n, days)
    return np.where(source >= 0, x[np.clip(source, 0, n - 1)], fallback)


def snaive4_forecasts(x: np.ndarray, days: int, span: int = 4 * SEASON) -> np.ndarray:
    """Each future day as the mean of its weekday over the last four weeks (the mean so
    far where that weekday has not been seen yet). Weekdays are aligned by position."""
    import numpy as np

    n = len(x)
    residue = np.arange(n) % SEASON
    onehot = (residue[:, None] == np.arange(SEASON)[None, :]).astype(float)
    sums = np.cumsum(onehot * x[:, None], axis=0)
    counts = np.cumsum(onehot, axis=0)
    sums[span:] -= sums[:-span].copy()
    counts[span:] -= counts[:-span].copy()
    overall = np.cumsum(x) / np.arange(1, n + 1)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), overall[:, None])
    future = (np.arange(n)[:, None] + np.arange(1, days + 1)[None, :]) % SEASON
    return np.take_along_axis(means, future, axis=1)


def robust_sigma(x: np.ndarray) -> float:
    """Noise scale of a series from weekly (else daily) differences, by MAD."""
    import numpy as np

    lag = SEASON if len(x) > 3 * SEASON else 1
    diff = x[lag:] - x[:-lag]
    if len(diff) == 0:
        return math.inf
    mad = float(np.median(np.abs(diff - np.median(diff))))
    sigma = 1.4826 * mad / math.sqrt(2)
    if sigma <= 0:
        sigma = float(np.std(diff)) / math.sqrt(2)
    return sigma if sigma > 0 else math.inf


def ets_forecasts(x: np.ndarray, dow0: int, days: int, forms: tuple[Ets, ...]) -> list[np.ndarray]:
    """Run every form's filter at once (vectorised over forms); return each one's
    forecasts from every origin."""
    import numpy as np

    n = len(x)
    g = len(forms)
    alpha = np.array([f.alpha for f in forms])
    beta = np.array([f.beta for f in forms])
    phi = np.array([f.phi for f in forms])
    gamma = np.array([f.gamma for f in forms])
    clip = CLIP_SIGMAS * robust_sigma(x)
    weekday = (dow0 + np.arange(n)) % SEASON
    head = x[: min(n, 4 * SEASON)]
    profile = np.zeros(SEASON)
    if len(head) >= 2 * SEASON:
        centre = float(np.median(head))
        for w in range(SEASON):
            mine = head[weekday[: len(head)] == w]
            profile[w] = float(np.median(mine)) - centre if len(mine) else 0.0
        profile -= profile.mean()
    seasonal = gamma > 0
    level = np.full(g, float(np.median(head - profile[weekday[: len(head)]])))
    slope = np.zeros(g)
    season = np.where(seasonal[:, None], profile[None, :], 0.0)
    levels = np.empty((n, g))
    slopes = np.empty((n, g))
    seasons = np.empty((n, g, SEASON))
    for t in range(n):
        j = weekday[t]
        base = level + phi * slope
        e = x[t] - base - season[:, j]
        ec = np.minimum(np.maximum(e, -clip), clip)  # np.clip costs several times more per call
        level = base + alpha * ec
        slope = phi * slope + beta * ec
        season[:, j] += gamma * ec
        levels[t], slopes[t], seasons[t] = level, slope, season
    k = np.arange(1, days + 1)
    damp = np.cumsum(phi[:, None] ** k[None, :], axis=1)  # (g, days); phi 0 -> 0
    future = (dow0 + np.arange(n)[:, None] + k[None, :]) % SEASON  # (n, days)
    out = []
    for i in range(g):
        s = seasons[:, i, :][np.arange(n)[:, None], future]
        out.append(levels[:, i, None] + slopes[:, i, None] * damp[i][None, :] + s)
    return out
