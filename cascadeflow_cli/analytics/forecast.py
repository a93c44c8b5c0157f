"""Cost forecasting: what will the next days (and this budget period) cost?

The model, in short:

* The input is a daily spend series in USD; days without spend count as zero.
* Spend is modelled on a log scale, ``z = log(y + c)`` with ``c`` a tenth of the typical
  (median non-zero) day, so zero days, weekday/weekend patterns and multiplicative growth
  all fit one additive model.
* Four exponential-smoothing state-space forms are fitted on ``z``: level only (A,N,N),
  level + damped trend (A,Ad,N), level + weekly season (A,N,A), and both (A,Ad,A).
  Parameters come from a vectorised grid search that minimises the in-sample log error
  of the forecast total of the next ``horizon`` days from every origin (multi-step
  estimation: one-step fitting chases day-to-day noise, which a 30-day total does not
  care about). The form is chosen by AICc (from the one-step errors).
* Robustness: state updates use residuals clipped at 3 robust standard deviations, so a
  one-off spike does not move the level; three clipped residuals of one sign in a row
  are a level shift (a dearer model, a new workload, a holiday), and the level jumps to
  the new one instead of creeping towards it.
* Seasonal naive (the mean log spend of the same weekday over the last four weeks) is the
  floor: when its in-sample error of the total beats the chosen form, it is used instead
  (unless those four weeks straddle a level shift).
* Prediction intervals are calibrated empirically: the model is run from every past
  origin, and the paths of its real log errors over the next days are added to the
  current forecast (a rolling-origin error-path bootstrap). The resulting sample paths
  give per-day and total quantiles, the mean, and the probability of exceeding a budget.
  Few past paths understate the spread of the next one, so they are widened by the
  ratio of a Student-t to a normal quantile with as many degrees of freedom as the
  history holds independent windows. With too little history for error paths,
  one-step residuals are bootstrapped through the model instead.
* Below 14 days of history the forecast is a clearly flagged naive estimate.

Pure numpy; no database, clock or printing here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.money import format_dollars
from cascadeflow_cli.words import count_of

if TYPE_CHECKING:
    import numpy as np

SEASON = 7
MIN_HISTORY_DAYS = 14
DEFAULT_CONFIDENCE = 0.9
CLIP_SIGMAS = 3.0
BURN_IN = 14  # days before in-sample errors count (the initial states are rough)
MIN_ERROR_PATHS = 28  # complete past error paths needed for the empirical intervals
MAX_ERROR_PATHS = 730  # the most recent origins used for them
WIDEN_AT = 0.9  # the interval level at which small-sample widening is matched
SHIFT_RUN = 3  # this many clipped residuals of one sign in a row: a level shift

_ALPHAS = (0.01, 0.02, 0.04, 0.07, 0.1, 0.15, 0.2, 0.3, 0.4, 0.55, 0.7, 0.85)
_BETAS = (0.002, 0.01, 0.03, 0.08)
_PHIS = (0.8, 0.9, 0.95, 0.98)
_GAMMAS = (0.001, 0.02, 0.05, 0.1, 0.2)


# --- public data ------------------------------------------------------------------


@dataclass(frozen=True)
class DailyForecast:
    """Forecast spend for one day, USD."""

    date: date
    mean: float
    lower: float
    upper: float


@dataclass(frozen=True)
class BudgetPeriod:
    """A budget limit over a period of days (inclusive), USD.

    ``window`` names the budget window the limit came from; ``window_limit`` is that
    window's own limit when ``limit`` was scaled to a longer period (e.g. a daily limit
    times the days of the month)."""

    window: str
    limit: float
    period_start: date
    period_end: date
    window_limit: float | None = None


@dataclass(frozen=True)
class BudgetOutlook:
    """Where spend in a budget period is heading: spent so far plus the forecast."""

    window: str
    limit: float
    period_start: date
    period_end: date
    spent_to_date: float  # before the forecast's first day
    expected_total: float  # spent plus the mean forecast of the rest of the period
    lower: float
    upper: float
    risk: float  # probability that the period's total exceeds the limit
    exceed_date: date | None  # the day expected cumulative spend first passes the limit
    window_limit: float | None = None

    @property
    def alert(self) -> bool:
        """Worth telling the user: likely to exceed, or already over."""
        return self.risk >= 0.5 or self.spent_to_date > self.limit

    @property
    def message(self) -> str:
        return self.describe()

    def describe(self, who: str | None = None) -> str:
        """One line: "at this pace alice exceeds the monthly budget on the 23rd (risk 0.81)"."""
        subject = who or "spend"
        what = f"{self.window} budget"
        if self.window_limit is not None:
            unit = "day" if self.window == "daily" else "week"
            what += (f" ({format_dollars(self.window_limit)}/{unit}, "
                     f"{format_dollars(self.limit)} over the month)")
        if self.spent_to_date > self.limit:
            return (f"{subject} is already over the {what}: spent {format_dollars(self.spent_to_date)} "
                    f"of {format_dollars(self.limit)}")
        if self.exceed_date is not None:
            return (f"at this pace {subject} exceeds the {what} on the "
                    f"{_ordinal(self.exceed_date.day)} ({self.exceed_date.isoformat()}; "
                    f"risk {self.risk:.2f})")
        return (f"{subject} is expected to reach {format_dollars(self.expected_total)} of the "
                f"{format_dollars(self.limit)} {what} by {self.period_end.isoformat()} "
                f"(risk of exceeding {self.risk:.2f})")

    def to_json(self, who: str | None = None) -> dict[str, Any]:
        return {
            "window": self.window,
            "limit": _finite(self.limit),
            "window_limit": _finite(self.window_limit) if self.window_limit is not None else None,
            "period_start": None if self.period_start == date.min else self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "spent_to_date": _finite(self.spent_to_date),
            "expected_total": _finite(self.expected_total),
            "lower": _finite(self.lower),
            "upper": _finite(self.upper),
            "risk": _finite(self.risk),
            "exceed_date": self.exceed_date.isoformat() if self.exceed_date else None,
            "alert": self.alert,
            "message": self.describe(who),
        }


@dataclass(frozen=True)
class CostPrediction:
    """A spend forecast for ``horizon_days`` days from ``as_of`` (inclusive), USD.

    ``mean``, ``median``, ``lower`` and ``upper`` describe the predictive distribution of
    the total over the horizon; ``lower``/``upper`` bound a central interval of probability
    ``confidence``. Spend is right-skewed, so the median is the better single guess of
    what the period will cost and the mean (larger) what it costs on average."""

    as_of: date
    horizon_days: int
    mean: float
    median: float
    lower: float
    upper: float
    std: float
    confidence: float
    daily: tuple[DailyForecast, ...]
    method: str
    history_days: int
    short_history: bool = False
    notes: tuple[str, ...] = ()
    budget: BudgetOutlook | None = None
    history: tuple[tuple[date, float], ...] = field(default=(), repr=False)

    @property
    def risk(self) -> float | None:
        """Probability that the budget period's spend exceeds the budget (None: no budget)."""
        return self.budget.risk if self.budget else None

    @property
    def risk_score(self) -> float:
        """The seed's name for ``risk`` (0.0 without a budget)."""
        return self.risk or 0.0

    def to_json(self, user: str | None = None) -> dict[str, Any]:
        """The `cascade forecast --json` object of CLI.md (plus a few extras)."""
        return {
            "user": user,
            "as_of": self.as_of.isoformat(),
            "horizon_days": self.horizon_days,
            "mean": _finite(self.mean),
            "median": _finite(self.median),
            "lower": _finite(self.lower),
            "upper": _finite(self.upper),
            "confidence": self.confidence,
            "daily": [{"date": d.date.isoformat(), "mean": _finite(d.mean),
                       "lower": _finite(d.lower), "upper": _finite(d.upper)} for d in self.daily],
            "budget": self.budget.to_json(user) if self.budget else None,
            "risk": _finite(self.risk) if self.risk is not None else None,
            "method": self.method,
            "history_days": self.history_days,
            "short_history": self.short_history,
            "notes": list(self.notes),
        }


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _finite(value: float | None, digits: int = 6) -> float:
    """A JSON-safe number: NaN and infinities never leave this module."""
    if value is None or not math.isfinite(value):
        return 0.0
    return round(float(value), digits)


# --- budget periods ---------------------------------------------------------------


def month_bounds(day: date) -> tuple[date, date]:
    first = day.replace(day=1)
    after = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, after - timedelta(days=1)


def window_period(window: str, day: date) -> tuple[date, date | None]:
    """The calendar period of a budget window containing ``day`` (end None for total)."""
    if window == "daily":
        return day, day
    if window == "weekly":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=6)
    if window == "monthly":
        return month_bounds(day)
    if window == "total":
        return date.min, None
    raise ValueError(f"unknown budget window {window!r}")


def window_budget(window: str, limit: float, day: date) -> BudgetPeriod:
    """One budget window's limit over its own period containing ``day`` (for `budget
    show`: daily, weekly, monthly; total runs from the first spend to the month's end)."""
    start, end = window_period(window, day)
    return BudgetPeriod(window, float(limit), start, end if end is not None else month_bounds(day)[1])


def budget_period(limits: Mapping[str, float], as_of: date) -> BudgetPeriod | None:
    """The budget a forecast is judged against, always over the month containing ``as_of``.

    The monthly limit when there is one; else the tightest of daily and weekly (compared
    per day), scaled to the month (daily × days in month, weekly × days / 7); else the
    total limit, against all spend up to the end of the month."""
    clean = {w: float(v) for w, v in limits.items() if v is not None and float(v) > 0}
    start, end = month_bounds(as_of)
    days = (end - start).days + 1
    if "monthly" in clean:
        return BudgetPeriod("monthly", clean["monthly"], start, end)
    per_day = {w: clean[w] / n for w, n in (("daily", 1), ("weekly", 7)) if w in clean}
    if per_day:
        window = min(per_day, key=lambda w: per_day[w])
        return BudgetPeriod(window, per_day[window] * days, start, end, window_limit=clean[window])
    if "total" in clean:
        return BudgetPeriod("total", clean["total"], date.min, end)
    return None


# --- the forecaster ---------------------------------------------------------------


class CostForecaster:
    """Forecast daily spend and its total over a horizon, with calibrated intervals.

    ``history`` is an iterable of ``(date, usd)`` (several rows per day are summed, missing
    days are zero). ``forecast`` uses only days strictly before ``as_of`` (default: the day
    after the last row), and forecasts ``as_of`` and the following days."""

    def __init__(self, history: Iterable[tuple[date, float]] = (), *,
                 confidence: float = DEFAULT_CONFIDENCE, n_paths: int = 2000, seed: int = 0,
                 min_history: int = MIN_HISTORY_DAYS) -> None:
        if not 0.0 < confidence < 1.0:
            raise ValueError("confidence must be between 0 and 1")
        self.history = list(history)
        self.confidence = confidence
        self.n_paths = n_paths
        self.seed = seed
        self.min_history = max(1, min_history)

    def forecast(self, history: Iterable[tuple[date, float]] | None = None, *, horizon: int = 30,
                 as_of: date | None = None, budget: BudgetPeriod | None = None) -> CostPrediction:
        if horizon < 1:
            raise ValueError("horizon must be at least one day")
        rows = self.history if history is None else list(history)
        series = DailySeries.build(rows, as_of)
        sim_days = horizon
        if budget is not None and budget.period_end >= series.as_of:
            sim_days = max(horizon, (budget.period_end - series.as_of).days + 1)
        paths, method, notes = self._paths(series, sim_days)
        return _summarise(series, paths, horizon, self.confidence, method, notes, budget,
                          self.min_history)

    def budget_outlook(self, budget: BudgetPeriod, history: Iterable[tuple[date, float]] | None = None,
                       *, as_of: date | None = None) -> BudgetOutlook:
        """Where spend in ``budget``'s period is heading (the API for `budget show`)."""
        days = 1
        if as_of is not None and budget.period_end >= as_of:
            days = (budget.period_end - as_of).days + 1
        prediction = self.forecast(history, horizon=days, as_of=as_of, budget=budget)
        assert prediction.budget is not None
        return prediction.budget

    def predict_monthly_cost(self, history: Iterable[tuple[date, float]] | None = None,
                             as_of: date | None = None) -> CostPrediction:
        """The seed's entry point: the next 30 days."""
        return self.forecast(history, horizon=30, as_of=as_of)

    # --- internals ----------------------------------------------------------------

    def _paths(self, series: DailySeries, days: int) -> tuple[np.ndarray, str, tuple[str, ...]]:
        """Sample paths of future daily spend, shape (paths, days), and how they were made."""
        import numpy as np

        y = series.values
        n = len(y)
        notes: list[str] = list(series.notes)
        if n == 0:
            notes.append("no spend history before this date: nothing to forecast from")
            return np.zeros((1, days)), "none", tuple(notes)
        if not np.any(y > 0):
            notes.append(f"no spend in {count_of(n, 'day')} of history: forecast is zero")
            return np.zeros((1, days)), "zero", tuple(notes)
        rng = np.random.default_rng(self.seed)
        if n < self.min_history:
            notes.append(f"only {count_of(n, 'day')} of history (fewer than {self.min_history}): "
                         "a naive estimate, not a model forecast")
            method = f"naive mean of {count_of(n, 'day')}"
            return _naive_paths(y, days, self.n_paths, rng), method, tuple(notes)
        model = fit_model(y, series.start.weekday(), horizon=days)
        paths = model.sample_paths(days, self.n_paths, rng)
        return paths, model.describe(), tuple(notes)


# --- the daily series -------------------------------------------------------------


@dataclass(frozen=True)
class DailySeries:
    """A zero-filled daily series ending the day before ``as_of``."""

    start: date
    as_of: date
    values: np.ndarray
    notes: tuple[str, ...] = ()

    @classmethod
    def build(cls, rows: Sequence[tuple[date, float]], as_of: date | None) -> DailySeries:
        import numpy as np

        by_day: dict[date, float] = {}
        bad = 0
        for day, amount in rows:
            value = float(amount)
            if not math.isfinite(value):
                bad += 1
                continue
            by_day[day] = by_day.get(day, 0.0) + value
        notes = [f"ignored {bad} non-finite amount(s)"] if bad else []
        if as_of is None:
            as_of = (max(by_day) + timedelta(days=1)) if by_day else date.today()
        later = sum(1 for d in by_day if d >= as_of)
        if later:
            notes.append(f"ignored {count_of(later, 'day')} of spend on or after {as_of.isoformat()}")
        past = {d: v for d, v in by_day.items() if d < as_of}
        if not past:
            return cls(as_of, as_of, np.zeros(0), tuple(notes))
        start = min(past)
        values = np.zeros((as_of - start).days)
        for d, v in past.items():
            values[(d - start).days] = max(v, 0.0)  # a refund cannot make a day negative
        return cls(start, as_of, values, tuple(notes))

    def spent_between(self, first: date, last: date) -> float:
        """Recorded spend from ``first`` to ``last`` inclusive (clipped to the series)."""
        lo = max((first - self.start).days, 0) if first > self.start else 0
        hi = min((last - self.start).days + 1, len(self.values))
        return float(self.values[lo:hi].sum()) if hi > lo else 0.0


# --- naive estimate for short histories -------------------------------------------


def _naive_paths(y: np.ndarray, days: int, n_paths: int, rng: np.random.Generator) -> np.ndarray:
    """Days drawn at random from the short history, times an uncertain level: the mean
    of n days is known only to about a factor exp(1/sqrt(n))."""
    import numpy as np

    n = len(y)
    draws = rng.choice(y, size=(n_paths, days), replace=True)
    level = np.exp(rng.normal(0.0, 1.0 / math.sqrt(n), size=(n_paths, 1)))
    return draws * level / np.exp(0.5 / n)  # keep the mean at the history's mean


# --- exponential smoothing on log spend ------------------------------------------


@dataclass(frozen=True)
class _Form:
    name: str
    trend: bool
    seasonal: bool

    @property
    def n_params(self) -> int:
        """Smoothing parameters + initial states + the innovation variance."""
        k = 1 + 1  # alpha, l0
        if self.trend:
            k += 3  # beta, phi, b0
        if self.seasonal:
            k += 1 + SEASON - 1  # gamma, s0 (summing to zero)
        return k + 1


FORMS = (_Form("A,N,N", False, False), _Form("A,Ad,N", True, False),
         _Form("A,N,A", False, True), _Form("A,Ad,A", True, True))


@dataclass(frozen=True)
class _Params:
    alpha: float
    beta: float
    phi: float
    gamma: float


@dataclass
class LogModel:
    """A fitted model of ``z = log(y + offset)``; produces sample paths of future ``y``."""

    form: str
    y: np.ndarray
    z: np.ndarray
    offset: float
    dow0: int
    clip: float
    params: _Params | None  # None: seasonal naive
    init: tuple[float, float, np.ndarray]
    aicc: float
    error_h: float
    horizon: int

    @cached_property
    def states(self) -> _States:
        assert self.params is not None
        return _state_history(self.z, self.dow0, self.params, self.init, self.clip)

    def recent_shift(self, days: int) -> bool:
        """Whether a level shift was taken in the last ``days`` days."""
        if self.params is None:
            return False
        return any(t >= len(self.z) - days for t in self.states.shifts)

    def describe(self) -> str:
        if self.params is None:
            return "seasonal naive (4-week weekday means of log spend)"
        p = self.params
        text = f"ETS({self.form}) on log spend, alpha={p.alpha:g}"
        if "Ad" in self.form:
            text += f", beta={p.beta:g}, phi={p.phi:g}"
        if self.form.endswith("A"):
            text += f", gamma={p.gamma:g}"
        return text

    # point forecasts from every origin ------------------------------------------

    def origin_forecasts(self, days: int) -> np.ndarray:
        """``F[t, k]``: forecast of ``z[t + 1 + k]`` made after observing ``z[t]``, for
        every origin t in 0..n-1 (k = 0..days-1)."""
        import numpy as np

        n = len(self.z)
        if self.params is None:
            return _snaive_origin_forecasts(self.z, days)
        st = self.states
        levels, slopes, seasons = st.levels, st.slopes, st.seasons
        k = np.arange(1, days + 1)
        damp = np.cumsum(self.params.phi ** k) if "Ad" in self.form else np.zeros(days)
        t = np.arange(n)
        weekday = (self.dow0 + t[:, None] + k[None, :]) % SEASON
        season = np.take_along_axis(seasons, weekday, axis=1)
        return levels[:, None] + slopes[:, None] * damp[None, :] + season

    def sample_paths(self, days: int, n_paths: int, rng: np.random.Generator) -> np.ndarray:
        """Future daily spend paths, shape (paths, days), in USD."""
        import numpy as np

        n = len(self.z)
        forecasts = self.origin_forecasts(days)
        origins = np.arange(BURN_IN - 1, n - days)
        origins = origins[-MAX_ERROR_PATHS:]
        current = forecasts[-1]
        if len(origins) < MIN_ERROR_PATHS:
            return np.maximum(np.exp(self._simulate(days, n_paths, rng, current)) - self.offset, 0.0)
        future = origins[:, None] + 1 + np.arange(days)[None, :]
        errors = self.z[future] - forecasts[origins]
        paths = np.maximum(np.exp(current[None, :] + errors) - self.offset, 0.0)
        return _widen(paths, small_sample_factor(len(origins), days, WIDEN_AT))

    def _simulate(self, days: int, n_paths: int, rng: np.random.Generator,
                  current: np.ndarray) -> np.ndarray:
        """Innovations bootstrapped through the model (short histories)."""
        import numpy as np

        residuals = self.one_step_residuals()
        usable = residuals[min(BURN_IN, len(residuals) // 2):]
        usable = usable - usable.mean()
        if self.params is None:
            # seasonal naive: no state to update, errors are the day-level noise plus a
            # random-walk drift of the four-week mean
            noise = rng.choice(usable, size=(n_paths, days))
            drift = np.cumsum(rng.choice(usable, size=(n_paths, days)), axis=1) / math.sqrt(28)
            return current[None, :] + noise + drift
        p = self.params
        st = self.states
        lvl = np.full(n_paths, st.levels[-1])
        slope = np.full(n_paths, st.slopes[-1])
        season = np.tile(st.seasons[-1], (n_paths, 1))
        out = np.empty((n_paths, days))
        n = len(self.z)
        for k in range(days):
            j = (self.dow0 + n + k) % SEASON
            e = rng.choice(usable, size=n_paths)
            base = lvl + p.phi * slope
            out[:, k] = base + season[:, j] + e
            ec = np.clip(e, -self.clip, self.clip)
            lvl = base + p.alpha * ec
            slope = p.phi * slope + p.beta * ec
            season[:, j] += p.gamma * ec
        return out

    def one_step_residuals(self) -> np.ndarray:
        forecasts = self.origin_forecasts(1)
        return self.z[1:] - forecasts[:-1, 0]


def _widen(paths: np.ndarray, factor: float) -> np.ndarray:
    """Spread the paths' totals ``factor`` times wider on the log scale around their
    median, scaling each path as a whole (its days keep their shape, the median total
    stays where it was: widening each day's log error instead would raise it)."""
    import numpy as np

    totals = paths.sum(axis=1)
    spent = totals > 0
    if factor <= 1.0 or spent.sum() < 2:
        return paths
    log_totals = np.log(totals[spent])
    centre = float(np.median(log_totals))
    scale = np.exp((factor - 1.0) * (log_totals - centre))
    out = paths.copy()
    out[spent] *= scale[:, None]
    return out


def small_sample_factor(n_origins: int, days: int, confidence: float) -> float:
    """How much wider a Student-t interval is than a normal one, with as many degrees of
    freedom as the error paths hold independent windows. Overlapping paths from a short
    history see only a few independent ``days``-long stretches, and the spread of a few
    samples understates the spread of the next one."""
    from statistics import NormalDist

    df = max(n_origins / days, 1.0)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    # Cornish-Fisher expansion of the t quantile (Abramowitz & Stegun 26.7.5)
    t = (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
         + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))
    return min(t / z, 3.0)


def fit_model(y: np.ndarray, dow0: int, horizon: int = 30) -> LogModel:
    """Fit every form to the daily series ``y`` (first day's weekday ``dow0``), pick one by
    AICc, and fall back to seasonal naive when that forecasts the total better."""
    import numpy as np

    y = np.asarray(y, dtype=float)
    offset = 0.1 * float(np.median(y[y > 0]))
    z = np.log(y + offset)
    clip = CLIP_SIGMAS * _robust_sigma(z)
    n = len(z)
    h_fit = max(1, min(horizon, (n - BURN_IN) // 3))
    candidates = []
    for form in FORMS:
        if form.seasonal and n < 3 * SEASON:
            continue
        init = _initial_states(z, dow0, form, clip)
        params, sse1, error_h = _grid_fit(z, dow0, form, init, clip, h_fit)
        k = form.n_params
        aicc = n * math.log(max(sse1, 1e-12) / n) + 2 * k
        aicc += 2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else math.inf
        candidates.append(LogModel(form.name, y, z, offset, dow0, clip, params, init, aicc, error_h,
                                   h_fit))
    chosen = min(candidates, key=lambda m: m.aicc)
    if n >= 4 * SEASON + BURN_IN and not chosen.recent_shift(4 * SEASON):
        # the floor, unless its four weeks straddle a level shift the model has taken
        naive = LogModel("snaive", y, z, offset, dow0, clip, None, (0.0, 0.0, np.zeros(SEASON)),
                         math.inf, 0.0, h_fit)
        if _total_error(naive, h_fit) < _total_error(chosen, h_fit):
            return naive
    return chosen


def _robust_sigma(z: np.ndarray) -> float:
    """Noise scale of the log series from weekly (else daily) differences, by MAD."""
    import numpy as np

    lag = SEASON if len(z) > 3 * SEASON else 1
    diff = z[lag:] - z[:-lag]
    if len(diff) == 0:
        return math.inf
    mad = float(np.median(np.abs(diff - np.median(diff))))
    sigma = 1.4826 * mad / math.sqrt(2)
    if sigma <= 0:
        sigma = float(np.std(diff)) / math.sqrt(2)
    return sigma if sigma > 0 else math.inf


def _initial_states(z: np.ndarray, dow0: int, form: _Form,
                    clip: float) -> tuple[float, float, np.ndarray]:
    """Level, slope and weekday effects at t = -1. The weekday effects come from the whole
    history (per weekday, the median departure from the centred 7-day mean: robust, and
    with a 30-day criterion the weekday effects are hardly revised afterwards, so they had
    better be right from the start); level and slope from a line through the first 8
    weeks with those effects taken out."""
    import numpy as np

    weekday = (dow0 + np.arange(len(z))) % SEASON
    season = np.zeros(SEASON)
    if form.seasonal and len(z) >= 2 * SEASON:
        season = _weekday_profile(z, weekday)
    n = min(len(z), 8 * SEASON)
    t = np.arange(n, dtype=float)
    flat = z[:n] - season[weekday[:n]]
    slope = 0.0
    if form.trend and n >= 2 * SEASON:
        slope = float(np.polyfit(t, flat, 1)[0])
    # the level where the clipped residuals balance (a Huber location): the point the
    # filter's clipped updates settle at, so its early forecasts are not biased
    rest = flat - slope * t
    level = float(np.median(rest))
    for _ in range(20):
        level += float(np.mean(np.clip(rest - level, -clip, clip)))
    return level - slope, slope, season


def _weekday_profile(z: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    import numpy as np

    half = SEASON // 2
    trend = np.convolve(z, np.ones(SEASON) / SEASON, mode="valid")  # centred on day i + 3
    detrended = z[half:len(z) - half] - trend
    days = weekday[half:len(z) - half]
    profile = np.array([float(np.median(detrended[days == w])) if np.any(days == w) else 0.0
                        for w in range(SEASON)])
    return profile - profile.mean()


def _param_grid(form: _Form) -> tuple[np.ndarray, ...]:
    import numpy as np

    betas = _BETAS if form.trend else (0.0,)
    phis = _PHIS if form.trend else (0.0,)
    gammas = _GAMMAS if form.seasonal else (0.0,)
    a, b, p, g = (x.ravel() for x in np.meshgrid(_ALPHAS, betas, phis, gammas, indexing="ij"))
    keep = (b <= a) & (g <= 1 - a)
    return a[keep], b[keep], p[keep], g[keep]


def _grid_fit(z: np.ndarray, dow0: int, form: _Form, init: tuple[float, float, np.ndarray],
              clip: float, h: int) -> tuple[_Params, float, float]:
    """Run the filter for a grid of parameters at once; return the parameters whose
    forecasts of the next h days' total (of ``y + offset``) from every origin after the
    burn-in have the lowest mean absolute log error, with their one-step SSE (for AICc)
    and that error. Fitting what we forecast, the total, rather than the next day keeps
    the smoothing from chasing day-to-day noise."""
    import numpy as np

    alpha, beta, phi, gamma = _param_grid(form)
    g = len(alpha)
    n = len(z)
    level = np.full(g, init[0])
    slope = np.full(g, init[1])
    season = np.tile(init[2], (g, 1))
    sse1 = np.zeros(g)
    loss_h = np.zeros(g)
    run = np.zeros(g)  # signed count of consecutive clipped residuals
    run_sum = np.zeros(g)  # and their sum
    ks = np.arange(1, h + 1)
    damp = np.cumsum(phi[:, None] ** ks[None, :], axis=1)
    ez = np.concatenate([[0.0], np.cumsum(np.exp(z))])
    log_totals = np.log(np.maximum(ez[h:] - ez[:-h], 1e-300))  # [i]: log sum exp(z[i:i+h])
    count = 0
    for t in range(n):
        j = (dow0 + t) % SEASON
        s_j = season[:, j]
        base = level + phi * slope
        e = z[t] - base - s_j
        sse1 += e * e
        ec = np.clip(e, -clip, clip)
        sign = np.sign(e)
        going = (ec != e) & (run * sign > 0)
        run = np.where(ec != e, np.where(going, run + sign, sign), 0.0)
        run_sum = np.where(going, run_sum + e, e)
        shift = np.abs(run) >= SHIFT_RUN
        level = base + np.where(shift, run_sum / np.maximum(np.abs(run), 1), alpha * ec)
        run = np.where(shift, 0.0, run)
        slope = phi * slope + beta * ec
        season[:, j] = s_j + gamma * ec
        if t >= BURN_IN - 1 and t + h < n:
            # log of the forecast total of exp(z) over the next h days, against the actual
            weekdays = (dow0 + t + ks) % SEASON
            if form.trend:
                total = np.exp(damp * slope[:, None] + season[:, weekdays]).sum(axis=1)
            else:
                total = np.exp(season[:, weekdays]).sum(axis=1)
            loss_h += np.abs(log_totals[t + 1] - level - np.log(total))
            count += 1
    criterion = loss_h / count if count else sse1 / n
    i = int(np.argmin(criterion))
    params = _Params(float(alpha[i]), float(beta[i]), float(phi[i]), float(gamma[i]))
    return params, float(sse1[i]), float(criterion[i])


@dataclass(frozen=True)
class _States:
    """Level, slope and the 7 weekday effects after each observation, and the days on
    which a level shift was taken (SHIFT_RUN clipped residuals of one sign in a row)."""

    levels: np.ndarray
    slopes: np.ndarray
    seasons: np.ndarray
    shifts: tuple[int, ...]


def _state_history(z: np.ndarray, dow0: int, p: _Params, init: tuple[float, float, np.ndarray],
                   clip: float) -> _States:
    import numpy as np

    n = len(z)
    levels = np.empty(n)
    slopes = np.empty(n)
    seasons = np.empty((n, SEASON))
    level, slope = init[0], init[1]
    season = [float(s) for s in init[2]]
    zs = z.tolist()
    run = run_sum = 0.0
    shifts = []
    for t in range(n):
        j = (dow0 + t) % SEASON
        base = level + p.phi * slope
        e = zs[t] - base - season[j]
        ec = -clip if e < -clip else clip if e > clip else e
        sign = 1.0 if e > 0 else -1.0
        going = ec != e and run * sign > 0
        run = (run + sign if going else sign) if ec != e else 0.0
        run_sum = run_sum + e if going else e
        if abs(run) >= SHIFT_RUN:
            level = base + run_sum / abs(run)  # the new level: the run's mean
            shifts.append(t)
            run = 0.0
        else:
            level = base + p.alpha * ec
        slope = p.phi * slope + p.beta * ec
        season[j] += p.gamma * ec
        levels[t] = level
        slopes[t] = slope
        seasons[t] = season
    return _States(levels, slopes, seasons, tuple(shifts))


def _snaive_origin_forecasts(z: np.ndarray, days: int) -> np.ndarray:
    """Seasonal naive from every origin, on the log scale: each future day gets the mean
    log spend of the same weekday over the four weeks up to the origin (the mean so far
    where that weekday has not been seen yet). Averaging logs keeps one spike from
    raising a weekday fourfold. Weekdays are aligned by position in the series."""
    import numpy as np

    n = len(z)
    residue = np.arange(n) % SEASON
    onehot = (residue[:, None] == np.arange(SEASON)[None, :]).astype(float)
    sums = np.cumsum(onehot * z[:, None], axis=0)
    counts = np.cumsum(onehot, axis=0)
    span = 4 * SEASON
    sums[span:] -= sums[:-span].copy()
    counts[span:] -= counts[:-span].copy()
    overall = np.cumsum(z) / np.arange(1, n + 1)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), overall[:, None])
    future = (np.arange(n)[:, None] + np.arange(1, days + 1)[None, :]) % SEASON
    return np.take_along_axis(means, future, axis=1)


def _total_error(model: LogModel, h: int) -> float:
    """In-sample mean absolute log error of the h-day total from every origin."""
    import numpy as np

    n = len(model.y)
    origins = np.arange(BURN_IN - 1, n - h)
    if len(origins) == 0:
        return math.inf
    forecasts = model.origin_forecasts(h)[origins]
    predicted = np.maximum(np.exp(forecasts) - model.offset, 0.0).sum(axis=1)
    cum = np.concatenate([[0.0], np.cumsum(model.y)])
    actual = cum[origins + 1 + h] - cum[origins + 1]
    floor = model.offset * h
    return float(np.mean(np.abs(np.log(actual + floor) - np.log(predicted + floor))))


# --- summaries --------------------------------------------------------------------


def _summarise(series: DailySeries, paths: np.ndarray, horizon: int, confidence: float,
               method: str, notes: tuple[str, ...], budget: BudgetPeriod | None,
               min_history: int) -> CostPrediction:
    import numpy as np

    lo_q, hi_q = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    window = paths[:, :horizon]
    totals = window.sum(axis=1)
    daily = tuple(
        DailyForecast(series.as_of + timedelta(days=k), float(window[:, k].mean()),
                      float(np.quantile(window[:, k], lo_q)), float(np.quantile(window[:, k], hi_q)))
        for k in range(horizon))
    n = len(series.values)
    outlook = _outlook(series, paths, budget, confidence) if budget is not None else None
    return CostPrediction(
        as_of=series.as_of, horizon_days=horizon, mean=float(totals.mean()),
        median=float(np.median(totals)), lower=float(np.quantile(totals, lo_q)),
        upper=float(np.quantile(totals, hi_q)),
        std=float(totals.std()), confidence=confidence, daily=daily, method=method,
        history_days=n, short_history=n < min_history, notes=notes, budget=outlook,
        history=tuple((series.start + timedelta(days=i), float(v)) for i, v in enumerate(series.values)),
    )


def _outlook(series: DailySeries, paths: np.ndarray, budget: BudgetPeriod,
             confidence: float) -> BudgetOutlook:
    """Spent so far in the period plus simulated spend for the rest of it."""
    import numpy as np

    as_of = series.as_of
    spent = series.spent_between(budget.period_start, as_of - timedelta(days=1))
    remaining = (budget.period_end - as_of).days + 1 if budget.period_end >= as_of else 0
    if budget.period_start > as_of:  # the period has not started: nothing spent in it yet
        spent = 0.0
    skip = max((budget.period_start - as_of).days, 0)
    future = paths[:, skip:remaining] if remaining else np.zeros((paths.shape[0], 0))
    cumulative = spent + np.cumsum(future, axis=1) if future.shape[1] else np.full((paths.shape[0], 1), spent)
    totals = cumulative[:, -1]
    risk = float(np.mean(totals > budget.limit))
    exceed_date = None
    if spent > budget.limit:
        risk = 1.0
    elif future.shape[1]:
        over = np.nonzero(np.mean(cumulative, axis=0) > budget.limit)[0]
        if len(over):
            exceed_date = as_of + timedelta(days=skip + int(over[0]))
    lo_q, hi_q = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    outlook = BudgetOutlook(
        window=budget.window, limit=budget.limit, period_start=budget.period_start,
        period_end=budget.period_end, spent_to_date=spent, expected_total=float(totals.mean()),
        lower=float(np.quantile(totals, lo_q)), upper=float(np.quantile(totals, hi_q)), risk=risk,
        exceed_date=exceed_date, window_limit=budget.window_limit)
    return outlook
