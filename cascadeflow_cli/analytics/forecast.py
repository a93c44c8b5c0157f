"""Cost forecasting: what will the next days (and this budget period) cost?

* The input is a daily spend series in USD; days without spend count as zero.
* The forecast is chosen by the user's own history (`selection`): simple baselines
  (means of the last 7, 28 and 91 days, seasonal naive) and, with enough history, ETS
  forms with damped trend and weekly season, each on the raw and the log scale, run
  from every past origin and calibrated by their own past errors; the best few by the
  error of the horizon's total are averaged.
* Intervals are that combination's own backtest errors applied to today's forecast
  (sample paths of cumulative spend), so a 90% interval is what 90% of past horizons
  did; widened for the few independent windows a short history holds, and no narrower
  than the naive estimate's while they hold a single one (one sample of the error). The mean (of the
  total, each day, and the budget's expected total) is the paths' mean *before* that
  widening, the recent days' mean for a naive estimate: the widening is about the
  interval's reach, and its spread on the log scale would otherwise inflate the mean.
* A short history (under two months) is backtested on shorter totals, stretched to the
  horizon (`selection`).
* Below 14 days of history, or too short a history to backtest, the forecast is a
  clearly flagged naive estimate with a deliberately wide interval.
* A regular payment (the same amount at one interval, nothing between: `regular`) is
  forecast as whole payments; a window whose spend is one burst, as the naive estimate;
  a one-off runaway day that would rule a short backtest is left out of it (`selection`).
  Each says so in a note (`forecast_notes`).
* Spend already recorded today counts: the budget outlook adds it to what is spent,
  and today's forecast is at least that.
* When the last spend is days back, longer than any quiet stretch before it, no backtest
  has seen such a quiet: the forecast is then a mixture, stated in a note, of the quiet
  lasting (a quiet of q days lasts t more days with chance q/(q+t)) and spend resuming at
  its level before the quiet (forecast from the days before it); the note also names the
  ``--as-of`` to forecast from the last data instead.

Types live in `types`, budget periods in `periods`. Pure numpy; no database, clock or
printing here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from cascadeflow_cli.analytics.forecast_paths import _log_width, _naive_paths, _widen
from cascadeflow_cli.analytics.periods import budget_period, month_bounds, window_budget, window_period
from cascadeflow_cli.analytics.types import BudgetOutlook, BudgetPeriod, CostPrediction, DailyForecast
from cascadeflow_cli.words import count_of

if TYPE_CHECKING:
    import numpy as np

__all__ = ["BudgetOutlook", "BudgetPeriod", "CostForecaster", "CostPrediction", "DailyForecast",
           "budget_period", "month_bounds", "small_sample_factor", "window_budget", "window_period"]

MIN_HISTORY_DAYS = 14
DEFAULT_CONFIDENCE = 0.9
WIDEN_AT = 0.9  # the interval level at which small-sample widening is matched
MIN_SPREAD_WINDOWS = 2.0  # independent windows the error paths need to measure a spread
SHOWN_DAYS = 365  # the history a prediction carries for the chart (56 days) and --plot (90)


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
                 as_of: date | None = None, budget: BudgetPeriod | None = None,
                 today_spent: float = 0.0) -> CostPrediction:
        """``today_spent``: spend already recorded on ``as_of`` (today so far): it counts
        towards the budget period, and ``as_of``'s forecast is at least that."""
        if horizon < 1:
            raise ValueError("horizon must be at least one day")
        rows = self.history if history is None else list(history)
        series = DailySeries.build(rows, as_of)
        sim_days = horizon
        if budget is not None and budget.period_end >= series.as_of:
            sim_days = max(horizon, (budget.period_end - series.as_of).days + 1)
        today = max(float(today_spent), 0.0) if math.isfinite(today_spent) else 0.0
        quiet = self._after_quiet(series, horizon, sim_days) if today <= 0 else None
        paths, expected, method, notes = quiet or self._paths(series, horizon, sim_days)
        if today > 0:
            paths = paths.copy()
            paths[:, 0] = paths[:, 0].clip(min=today)
            expected = expected.copy()
            expected[0] = max(float(expected[0]), today)
        return _summarise(series, paths, expected, horizon, self.confidence, method, notes, budget,
                          self.min_history, today)

    def budget_outlook(self, budget: BudgetPeriod, history: Iterable[tuple[date, float]] | None = None,
                       *, as_of: date | None = None, today_spent: float = 0.0) -> BudgetOutlook:
        """Where spend in ``budget``'s period is heading (the API for `budget show`)."""
        days = 1
        if as_of is not None and budget.period_end >= as_of:
            days = (budget.period_end - as_of).days + 1
        prediction = self.forecast(history, horizon=days, as_of=as_of, budget=budget,
                                   today_spent=today_spent)
        assert prediction.budget is not None
        return prediction.budget

    def predict_monthly_cost(self, history: Iterable[tuple[date, float]] | None = None,
                             as_of: date | None = None) -> CostPrediction:
        """The seed's entry point: the next 30 days."""
        return self.forecast(history, horizon=30, as_of=as_of)

    # --- internals ----------------------------------------------------------------

    def _after_quiet(self, series: DailySeries, horizon: int,
                     days: int) -> tuple[np.ndarray, np.ndarray, str, tuple[str, ...]] | None:
        """A history ending in a quiet stretch longer than any before it (None otherwise):
        the paths of the days before the quiet, each held at zero until a resumption day
        drawn so that a quiet of q days lasts t more with chance q/(q+t) (the
        Lindy/Gott rule: nothing in the history has measured a quiet this long). The
        models run on the quiet itself mixed both stories: 30 quiet days after $10 a day
        gave a median of $48.10, equal to the 90% upper bound, under a note saying the
        forecast assumed the quiet continued."""
        import numpy as np

        from cascadeflow_cli.analytics.quiet import no_spend_since
        from cascadeflow_cli.analytics.selection import MAX_DAYS

        last = series.quiet_since()
        if last is None:
            return None
        quiet = (series.as_of - last).days - 1
        hint = f"`--as-of {(last + timedelta(days=1)).isoformat()}` forecasts from the last data"
        before = series.until(last + timedelta(days=1))
        if len(before.values) < self.min_history:
            # a burst and then quiet: the days before the quiet are no level to resume at
            paths, expected, method, notes = self._paths(series, horizon, days)
            return paths, expected, method, (*notes, f"{no_spend_since(last, series.as_of)}: the "
                                             "forecast averages the quiet days in with the spend "
                                             f"before them; {hint}")
        # the resumed level is the models' forecast that far past the last spend, as far as
        # they see (MAX_DAYS): beyond it no window edge turns the mixture into a zero (at
        # 730 quiet days after a year of spend the forecast fell to $0, mean included,
        # where 729 days gave a mean of $6.21), only the chance of resuming keeps falling
        lead = min(quiet, MAX_DAYS)
        paths, expected, method, notes = self._paths(before, horizon, lead + days)
        paths, expected = paths[:, lead:], expected[lead:]
        rng = np.random.default_rng(self.seed + 1)
        resume = quiet / rng.uniform(1e-12, 1.0, size=(paths.shape[0], 1)) - quiet
        k = np.arange(days)
        paths = np.where(resume < k[None, :] + 1, paths, 0.0)
        expected = expected * (k + 1) / (quiet + k + 1)  # the chance day k has resumed
        share = quiet / (quiet + horizon)
        lasts = "over 99%" if share > 0.99 else f"{share:.0%}"  # 26,393 quiet days: not "a 100% chance"
        article = "an" if lasts[0] in "8o" or lasts in ("11%", "18%") else "a"  # an 81% / over 99% chance
        # the resumed forecast's own notes are about the days before the quiet ("60 days of
        # history: ..." beside a method line of 90)
        notes = tuple(n if n in series.notes else f"before the quiet, {n}" for n in notes)
        return paths, expected, f"{method}, resuming after the quiet", (
            *notes, f"{no_spend_since(last, series.as_of)}, longer than any quiet before: the forecast "
            f"gives it {article} {lasts} chance of lasting the {count_of(horizon, 'day')} ahead, and "
            f"otherwise has spend resume at its level before it; {hint}")

    def _paths(self, series: DailySeries, horizon: int,
               days: int) -> tuple[np.ndarray, np.ndarray, str, tuple[str, ...]]:
        """Sample paths of future daily spend, shape (paths, days); the expected spend of
        each day (days,); and how they were made. The expectation is the paths' mean
        before any widening for small samples: widening spreads the log totals around their
        median to reach the interval's coverage, and its exp() would inflate the mean by the
        uncertainty of the interval's width (a biased mean, as the issue measured)."""
        import numpy as np

        from cascadeflow_cli.analytics.forecast_jump import jumped_days
        from cascadeflow_cli.analytics.forecast_notes import burst_note, one_off_note
        from cascadeflow_cli.analytics.regular import schedule, schedule_paths
        from cascadeflow_cli.analytics.selection import MAX_DAYS, choose
        from cascadeflow_cli.money import format_dollars

        y = series.values
        n = len(y)
        notes: list[str] = list(series.notes)
        if n == 0:
            notes.append("no spend history before this date: nothing to forecast from")
            return np.zeros((1, days)), np.zeros(days), "none", tuple(notes)
        if not np.any(y > 0):
            notes.append(f"no spend in {count_of(n, 'day')} of history: forecast is zero")
            return np.zeros((1, days)), np.zeros(days), "zero", tuple(notes)
        if not np.any(y[-MAX_DAYS:] > 0):
            # the models see the last MAX_DAYS only: all empty, the backtest divided by
            # nothing ('unexpected IndexError' for `--as-of 2099-01-01`, years after the spend)
            notes.append(f"no spend in the last {count_of(MAX_DAYS, 'day')} of history: forecast is zero")
            return np.zeros((1, days)), np.zeros(days), "zero", tuple(notes)
        rng = np.random.default_rng(self.seed)
        if n == 1:
            return self._one_day(y, days, rng, notes, series.start)
        jump = jumped_days(y[-MAX_DAYS:], horizon)
        if jump:
            return self._after_jump(series, horizon, days, jump)
        plan = schedule(y[-MAX_DAYS:])
        if plan is not None:
            paths, expected = schedule_paths(plan, days, self.n_paths, rng)
            fewest, most = plan.counts(horizon)
            times = f"{fewest} time" if fewest == most else f"{fewest} or {most} times"
            notes.append(f"a regular payment: {format_dollars(plan.amount)} every "
                         f"{count_of(plan.every, 'day')} ({len(plan.amounts)} so far, nothing between): "
                         f"forecast as that payment, {times} in {count_of(horizon, 'day')}")
            return paths, expected, f"regular payment every {count_of(plan.every, 'day')}", tuple(notes)
        spent = np.nonzero(y[-MAX_DAYS:] > 0)[0]
        # all the spend the models would see within a few days: one burst, no level for a
        # backtest to judge methods by (a lone $5,000 day after years of none: a median
        # equal to both bounds, or a 90% bound of $71 billion 18 days later)
        burst = n >= self.min_history and int(spent[-1] - spent[0]) + 1 < self.min_history
        choice = (choose(y, series.start.weekday(), horizon, days, self.confidence)
                  if n >= self.min_history and not burst else None)
        if choice is None:
            if n < self.min_history:
                notes.append(f"only {count_of(n, 'day')} of history (fewer than {self.min_history}): "
                             "a naive estimate, not a model forecast")
            elif burst:
                notes.append(burst_note(series, y[-MAX_DAYS:], spent))
            else:
                notes.append(f"{n} days of history are too few to compare methods on {horizon}-day "
                             "totals: the last 28 days' mean, with a wide interval")
            recent = y[-28:]
            # the expectation is the recent days' mean: unbiased for the level, where the
            # paths' own mean carries the skew of a lognormal level on top
            return (_naive_paths(recent, days, self.n_paths, rng, n), np.full(days, float(np.mean(recent))),
                    f"naive mean of the last {count_of(len(recent), 'day')}", tuple(notes))
        if choice.left_out:
            notes.append(one_off_note(series, choice.left_out, len(choice.scored)))
            y = choice.scored  # the naive floor below reads the days judged, too
        if choice.horizon < horizon:
            notes.append(f"{n} days of history: methods were compared on {choice.horizon}-day totals "
                         f"and the interval stretched to {horizon} days")
        cumulative = np.maximum(np.cumsum(choice.daily)[None, :] * choice.ratios, 0.0)
        centre = float(np.median(cumulative[:, horizon - 1]))
        # spend cannot fall back: a path's dips are lifted, which lifts low totals only (on
        # a bursty series the median total rose up to 8%); scaled back to the median total
        cumulative = np.maximum.accumulate(cumulative, axis=1)
        lifted = float(np.median(cumulative[:, horizon - 1]))
        if centre > 0 and lifted > 0:
            cumulative *= centre / lifted
        paths = np.diff(cumulative, axis=1, prepend=0.0)
        expected = paths.mean(axis=0)
        windows = max(len(choice.ratios) / choice.horizon, 1.0)
        factor = max(small_sample_factor(windows, WIDEN_AT), choice.width)
        if windows < MIN_SPREAD_WINDOWS:
            # the paths of one window are one sample of the error, no measure of its
            # spread (+-3% around a month that ended 35% higher): no narrower than the
            # naive estimate's model of it until a second independent window exists
            naive = _naive_paths(y[-28:], days, self.n_paths, rng, n)
            # compared at the horizon asked for: paths stretched beyond a shorter backtest
            # already grow with it (compared at the backtest's 9 days, adexchange's 30-day
            # intervals covered 100%)
            own = _log_width(paths, horizon, self.confidence)
            factor = max(factor, _log_width(naive, horizon, self.confidence) / max(own, 1e-9))
        paths = _widen(paths, factor, choice.horizon)
        # the widening is about the interval's reach, not its centre: spread around the
        # median of the backtest's shorter totals, the horizon's median went with it (14
        # two-humped error paths of an intermittent 39-day history, factor 3: the median
        # month $21,457 for a forecast of $1,082 and an actual $527); scaled back to it
        widened = float(np.median(paths[:, :horizon].sum(axis=1)))
        if centre > 0 and widened > 0:
            paths = paths * (centre / widened)
        return paths, expected, choice.method, tuple(notes)


    def _one_day(self, y: np.ndarray, days: int, rng: np.random.Generator, notes: list[str],
                 day: date) -> tuple[np.ndarray, np.ndarray, str, tuple[str, ...]]:
        """One day of history: a one-off or the first day of a habit (`forecast_jump`'s
        mixture, with nothing before it). The naive estimate alone was that day x the
        horizon ($250 yesterday: a median of $7,500, 90% $2,995-$19,107)."""
        import numpy as np

        from cascadeflow_cli.analytics.forecast_jump import lindy_mix
        from cascadeflow_cli.money import format_dollars

        level = float(y[0])
        new = _naive_paths(y, days, self.n_paths, rng, 1)
        paths, chance = lindy_mix(new, np.zeros((1, days)), 1, rng)
        notes.append(f"only 1 day of history ({format_dollars(level)} on {day.isoformat()}): one "
                     "day says little, a one-off or a daily habit; the forecast is that day's "
                     "spend going on t more days with chance 1/(1+t): from no more spend to most of a "
                     "month of it")
        return paths, level * chance, "one day of history, lasting as long again", tuple(notes)

    def _after_jump(self, series: DailySeries, horizon: int, days: int,
                    age: int) -> tuple[np.ndarray, np.ndarray, str, tuple[str, ...]]:
        """The last ``age`` days jumped (`forecast_jump`): their level going on, mixed with
        the forecast of the days before them. Left to the models, a x100 price 10 days
        back gave a 90% upper bound of $46 million; a cent a day then $50 yesterday, the
        $50 left out as a one-off, a range of $0.30-$0.30."""
        import numpy as np

        from cascadeflow_cli.analytics.forecast_jump import lindy_mix
        from cascadeflow_cli.money import format_dollars

        rng = np.random.default_rng(self.seed + 2)
        recent = series.values[-age:]
        old, old_mean, method, notes = self._paths(series.until(series.as_of - timedelta(days=age)),
                                                   horizon, age + days)
        new = _naive_paths(recent, days, self.n_paths, rng, age)
        paths, chance = lindy_mix(new, old[:, age:], age, rng)
        expected = chance * float(np.mean(recent)) + (1 - chance) * old_mean[age:]
        first = series.as_of - timedelta(days=age)
        spent = format_dollars(float(recent.sum()))
        note = (f"the last {count_of(age, 'day')} (from {first.isoformat()}, {spent}) "
                f"jumped to over 10 times the usual day: a new level or a one-off; the forecast "
                f"is that level going on t more days with chance {age}/({age}+t), else the level "
                "before it")
        method = f"{method}, mixed with the level of the last {count_of(age, 'day')}"
        return paths, expected, method, (*notes, note)


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

    @property
    def last_spend(self) -> date | None:
        import numpy as np

        spent = np.nonzero(self.values > 0)[0]
        return self.start + timedelta(days=int(spent[-1])) if len(spent) else None

    def quiet_since(self) -> date | None:
        """The last spend day, when the days since it outrun every quiet stretch before it."""
        import numpy as np

        from cascadeflow_cli.analytics.quiet import stale_since

        spent = [self.start + timedelta(days=int(i)) for i in np.nonzero(self.values > 0)[0]]
        return stale_since(spent, self.as_of)

    def until(self, as_of: date) -> DailySeries:
        """The series as it stood on ``as_of`` (the days before it)."""
        return DailySeries(self.start, as_of, self.values[:max((as_of - self.start).days, 0)], self.notes)

    def spent_between(self, first: date, last: date) -> float:
        """Recorded spend from ``first`` to ``last`` inclusive (clipped to the series)."""
        lo = max((first - self.start).days, 0) if first > self.start else 0
        hi = min((last - self.start).days + 1, len(self.values))
        return float(self.values[lo:hi].sum()) if hi > lo else 0.0


def small_sample_factor(windows: float, confidence: float) -> float:
    """How much wider a Student-t interval is than a normal one, with as many degrees of
    freedom as the error paths hold independent windows: a few samples' spread
    understates the spread of the next one."""
    from statistics import NormalDist

    df = max(windows, 1.0)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    # Cornish-Fisher expansion of the t quantile (Abramowitz & Stegun 26.7.5)
    t = (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
         + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))
    return min(t / z, 3.0)


# --- summaries --------------------------------------------------------------------


def _summarise(series: DailySeries, paths: np.ndarray, expected: np.ndarray, horizon: int, confidence: float,
               method: str, notes: tuple[str, ...], budget: BudgetPeriod | None,
               min_history: int, today: float) -> CostPrediction:
    import numpy as np

    lo_q, hi_q = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    window = paths[:, :horizon]
    totals = window.sum(axis=1)
    lows, highs = np.quantile(window, [lo_q, hi_q], axis=0)  # every day's at once
    daily = tuple(
        DailyForecast(series.as_of + timedelta(days=k), float(expected[k]), float(lows[k]), float(highs[k]))
        for k in range(horizon))
    lower, middle, upper = np.quantile(totals, [lo_q, 0.5, hi_q])
    n = len(series.values)
    outlook = _outlook(series, paths, expected, budget, confidence, today) if budget is not None else None
    return CostPrediction(
        as_of=series.as_of, horizon_days=horizon, mean=float(expected[:horizon].sum()),
        median=float(middle), lower=float(lower), upper=float(upper),
        std=float(totals.std()), confidence=confidence, daily=daily, method=method,
        history_days=n, short_history=n < min_history, notes=notes, budget=outlook,
        history=tuple((series.start + timedelta(days=i), float(series.values[i]))
                      for i in range(max(0, n - SHOWN_DAYS), n)),
        last_spend=series.last_spend,
    )


def _outlook(series: DailySeries, paths: np.ndarray, expected: np.ndarray, budget: BudgetPeriod,
             confidence: float, today: float) -> BudgetOutlook:
    """Spent so far in the period (today's spend included) plus simulated spend for the
    rest of it (today's forecast less what today has already cost): the risk and the
    interval from the paths, the expected total and the day it passes the limit from the
    expected spend."""
    import numpy as np

    as_of = series.as_of
    spent = series.spent_between(budget.period_start, as_of - timedelta(days=1))
    remaining = (budget.period_end - as_of).days + 1 if budget.period_end >= as_of else 0
    if budget.period_start > as_of:  # the period has not started: nothing spent in it yet
        spent = 0.0
    skip = max((budget.period_start - as_of).days, 0)
    future = paths[:, skip:remaining] if remaining else np.zeros((paths.shape[0], 0))
    mean_future = expected[skip:remaining] if remaining else np.zeros(0)
    if skip == 0 and remaining and today > 0:
        spent += today
        future = future.copy()
        future[:, 0] = np.maximum(future[:, 0] - today, 0.0)
        mean_future = mean_future.copy()
        mean_future[0] = max(float(mean_future[0]) - today, 0.0)
    mean_cumulative = spent + np.cumsum(mean_future)
    cumulative = spent + np.cumsum(future, axis=1) if future.shape[1] else np.full((paths.shape[0], 1), spent)
    totals = cumulative[:, -1]
    risk = float(np.mean(totals > budget.limit))
    exceed_date = None
    if spent > budget.limit:
        risk = 1.0
    elif future.shape[1]:
        over = np.nonzero(mean_cumulative > budget.limit)[0]
        if len(over):
            exceed_date = as_of + timedelta(days=skip + int(over[0]))
    lo_q, hi_q = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    lower, upper = np.quantile(totals, [lo_q, hi_q])
    return BudgetOutlook(
        window=budget.window, limit=budget.limit, period_start=budget.period_start,
        period_end=budget.period_end, spent_to_date=spent,
        expected_total=float(mean_cumulative[-1]) if len(mean_cumulative) else spent,
        lower=float(lower), upper=float(upper), risk=risk,
        exceed_date=exceed_date, window_limit=budget.window_limit)
