"""Rolling-origin backtest of the 30-day spend forecast, side by side with baselines.

Sets (every one in one run; each series is a daily USD series, days without spend zero):

* ``dev``: /work/shared/data/spend/daily_series_dev.csv (Wikipedia page views standing in
  for spend, 2,905 rows taken as consecutive days);
* ``adexchange``: the six real ad-exchange cost series (69 days each) of
  /work/shared/data/spend/adexchange_daily_dev.csv: short histories;
* ``synthetic users``: realistic per-user spend (``synthetic_users``: requests per day with a
  weekday/weekend pattern and growth, a runaway spike, a dearer model, holidays);
* four synthetic families of other character, fixed seeds (``families``): heavy tails
  (Student-t log noise, df 1.5-3), trend (x0.3 to x3 a year), intermittent spend (days
  with spend 15-60%), and no weekly pattern with a wandering level;
* ``sample history``: sample_data/history.csv, six users x 120 days;
* ``short synthetic``: held out for short histories, days 100-168 (69 days, as
  adexchange's) of the next draw's synthetic users and families (34 windows).

Protocol: cutoffs every ``STEP`` days once ``FIRST`` days of history exist (long series:
120 and 28; series under 200 days: 28 and 3); each method sees the history strictly before
the cutoff and forecasts the total of the next 30 days. Reported per set: median and mean
absolute percentage error of that total, and for ours how often the 90% interval covers the
actual; the bias of each point (the median of forecast / actual - 1, and the sum of
forecasts over the sum of actuals - 1: the second is what an unbiased mean gets right);
per series, ours against seasonal naive.

Methods: ours (``CostForecaster``: its predictive median, and its mean), seasonal naive
(each weekday as last week), the last 28 days' mean x 30, the seed's method (SES alpha 0.3
over the non-zero daily values, x 30) and statsforecast ``AutoETS(season_length=7)`` on the
last 730 days, the window ours sees (the ``[bench]`` extra; left out with a note when it is
not installed). The targets are checked per set and printed with each table.

    python bench/forecast_backtest.py [--no-autoets] [--offset N] [--backgrounds K] [--sets dev,...]
        [--autoets-models]

``--backgrounds K`` draws the synthetic users and families afresh (their seeds moved by K x
BACKGROUND_STEP, as bench/anomaly_eval.py's option does); the real series stay.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np

DATA = Path("/work/shared/data/spend")
DEFAULT_DATA = DATA / "daily_series_dev.csv"
ADEXCHANGE = DATA / "adexchange_daily_dev.csv"
HISTORY = Path(__file__).resolve().parent.parent / "sample_data" / "history.csv"
HORIZON = 30
CONFIDENCE = 0.9
AUTOETS_DAYS = 730
BACKGROUND_STEP = 10007  # --backgrounds K moves every synthetic seed by K x this
SETS = ("dev", "adexchange", "synthetic users", "heavy tails", "trend", "intermittent", "no weekly",
        "sample history", "short synthetic")
SHORT_DAYS = (100, 169)  # the held-out short windows: these days of another draw's synthetic series
# --- synthetic spend ----------------------------------------------------------------


@dataclass
class SyntheticUser:
    name: str
    start: date
    values: np.ndarray  # USD per day
    events: list[tuple[str, int, int]] = field(default_factory=list)  # (kind, first day, last day)


def synthetic_user(seed: int, days: int = 730, start: date = date(2025, 1, 6), *,
                   with_holiday: bool = False, with_events: bool = True) -> SyntheticUser:
    """One user's daily spend: Poisson requests (weekday/weekend pattern, growth, busy and
    quiet days), a per-request price with a switch to a dearer model, one runaway-script
    spike, and optionally a holiday. ``with_events=False``: none of those three (a clean
    background for injecting known events)."""
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    weekday = np.array([(start + timedelta(days=int(i))).weekday() for i in t])
    base = rng.uniform(30, 400)  # requests on a working day
    weekend = rng.uniform(0.03, 0.4)
    growth = rng.uniform(0.0, 1.2)  # per year, multiplicative
    rate = base * np.where(weekday >= 5, weekend, 1.0) * (1 + growth) ** (t / 365)
    rate *= np.exp(rng.normal(0, 0.25, days))  # busy and quiet days
    price = np.full(days, rng.uniform(0.001, 0.01))  # USD per request
    switch = int(rng.integers(days // 3, 2 * days // 3))
    switch_factor = rng.uniform(2.0, 4.0)
    holiday = int(rng.integers(60, days - 30))
    holiday_len = int(rng.integers(5, 15))
    spike = int(rng.integers(60, days))
    spike_factor = rng.uniform(4, 10)
    events: list[tuple[str, int, int]] = []
    if with_events:
        price[switch:] *= switch_factor
        events.append(("switch", switch, switch))
    if with_events and with_holiday:
        rate[holiday:holiday + holiday_len] *= 0.03
        events.append(("holiday", holiday, holiday + holiday_len - 1))
    if with_events:
        rate[spike] *= spike_factor
        events.append(("spike", spike, spike))
    count = rng.poisson(rate)
    noise = np.exp(rng.normal(0, 0.6 / np.sqrt(count + 1)))
    values = np.round(count * price * noise, 6)
    return SyntheticUser(f"user{seed}", start, values, events)


def synthetic_users(n: int, seed: int = 2026, days: int = 730, *,
                    with_events: bool = True) -> list[SyntheticUser]:
    """``n`` users; every third one also takes a holiday (a gap of one to two weeks)."""
    return [synthetic_user(seed + i, days, with_holiday=i % 3 == 2, with_events=with_events)
            for i in range(n)]


# --- synthetic families -----------------------------------------------------------


def family(kind: str, seed: int, days: int = 730) -> np.ndarray:
    """One series of a synthetic family (see the module docstring), USD per day."""
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    level = rng.uniform(0.5, 50.0)
    weekly = np.where(t % 7 >= 5, rng.uniform(0.2, 0.8), 1.0)
    if kind == "heavy tails":
        noise = np.exp(0.35 * rng.standard_t(rng.uniform(1.5, 3.0), days).clip(-8, 8))
        return level * weekly * noise
    if kind == "trend":
        growth = float(np.exp(rng.uniform(np.log(0.3), np.log(3.0))))
        return level * weekly * growth ** (t / 365) * np.exp(rng.normal(0, rng.uniform(0.15, 0.6), days))
    if kind == "intermittent":
        spend = rng.random(days) < rng.uniform(0.15, 0.6)
        return spend * level * np.exp(rng.normal(0, 0.8, days))
    if kind == "no weekly":
        walk = np.exp(np.cumsum(rng.normal(0, 0.03, days)))
        return level * walk * np.exp(rng.normal(0, rng.uniform(0.1, 0.5), days))
    raise ValueError(kind)


def families(kind: str, n: int = 6, seed: int = 4100) -> list[tuple[str, date, np.ndarray]]:
    return [(f"{kind} {i}", date(2025, 1, 6), family(kind, seed + 97 * i + len(kind))) for i in range(n)]


# --- data ---------------------------------------------------------------------------


def read_dev(path: Path) -> tuple[date, np.ndarray]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise SystemExit(f"{path}: no rows")
    start = date.fromisoformat(rows[0]["date"])
    return start, np.array([float(r["value"]) for r in rows])


def read_series(path: Path) -> list[tuple[str, date, np.ndarray]]:
    """``series,date,value`` rows grouped by series (each in date order)."""
    by: dict[str, list[tuple[date, float]]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            by.setdefault(row["series"], []).append((date.fromisoformat(row["date"]), float(row["value"])))
    out = []
    for name, rows in by.items():
        rows.sort()
        first = rows[0][0]
        values = np.zeros((rows[-1][0] - first).days + 1)
        for day, value in rows:
            values[(day - first).days] += value
        out.append((name, first, values))
    return out


def read_history(path: Path) -> list[tuple[str, date, np.ndarray]]:
    """The sample history's users, ``cost`` summed per UTC day."""
    by_user: dict[str, dict[date, float]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            day = date.fromisoformat(row["timestamp"][:10])
            days = by_user.setdefault(row["user"], {})
            days[day] = days.get(day, 0.0) + float(row["cost"])
    out = []
    for user, days in sorted(by_user.items()):
        first = min(days)
        values = np.zeros((max(days) - first).days + 1)
        for day, cost in days.items():
            values[(day - first).days] = cost
        out.append((user, first, values))
    return out


def load_set(name: str, backgrounds: int = 0) -> list[tuple[str, date, np.ndarray]]:
    """One set's series; ``backgrounds`` > 0: another draw of the synthetic ones."""
    if name == "dev":
        return [("dev", *read_dev(DEFAULT_DATA))] if DEFAULT_DATA.exists() else []
    if name == "adexchange":
        return read_series(ADEXCHANGE) if ADEXCHANGE.exists() else []
    if name == "synthetic users":
        users = synthetic_users(10, 2026 + backgrounds * BACKGROUND_STEP)
        return [(u.name, u.start, u.values) for u in users]
    if name == "sample history":
        return read_history(HISTORY)
    if name == "short synthetic":
        # held out for short histories: 69-day windows (as adexchange's) of the next draw's
        # synthetic users and families, so a short-history change is not judged on six series
        lo, hi = SHORT_DAYS
        draw = backgrounds + 1
        long = load_set("synthetic users", draw) + [
            s for kind in ("heavy tails", "trend", "intermittent", "no weekly") for s in load_set(kind, draw)]
        return [(label, start + timedelta(days=lo), values[lo:hi]) for label, start, values in long]
    return families(name, seed=4100 + backgrounds * BACKGROUND_STEP)


# --- methods ------------------------------------------------------------------------


def seed_method(history: np.ndarray) -> float:
    """The seed (SEED.md 1.6): SES with alpha 0.3 over the days that had spend, times 30."""
    values = history[history > 0]
    if len(values) == 0:
        return 0.0
    level = values[0]
    for v in values[1:]:
        level = 0.3 * v + 0.7 * level
    return float(level * HORIZON)


def seasonal_naive(history: np.ndarray) -> float:
    """Each weekday as it was last week (the last 7 days repeated over the horizon)."""
    week = history[-7:]
    return float(np.resize(week, HORIZON).sum()) if len(week) else 0.0


def mean28(history: np.ndarray) -> float:
    return float(history[-28:].mean() * HORIZON) if len(history) else 0.0


def autoets_method() -> Callable[[np.ndarray], float] | None:
    try:
        from statsforecast.models import AutoETS
    except ImportError:
        return None

    def forecast(history: np.ndarray) -> float:
        history = history[-AUTOETS_DAYS:]  # the window ours sees too (and 4x faster to fit)
        try:
            result = AutoETS(season_length=7 if len(history) >= 21 else 1).forecast(
                y=history.astype(float), h=HORIZON)
        except Exception:  # too short or degenerate for it: its own naive answer
            return mean28(history)
        return float(np.sum(result["mean"]))

    return forecast


def autoets_models(series: list[tuple[str, date, np.ndarray]], offset: int = 0) -> None:
    """Which model AutoETS fits per series over the cutoffs, and its median smoothing rate:
    what its forecast is (on the intermittent family, ETS(A,N,N) at alpha 1e-4, its lower
    bound: a level that does not move, the mean of the window)."""
    from collections import Counter

    from statsforecast.models import AutoETS

    for label, _, values in series:
        models: Counter[str] = Counter()
        alphas = []
        for cutoff in cutoffs(len(values), offset):
            history = values[:cutoff][-AUTOETS_DAYS:].astype(float)
            try:
                fitted = AutoETS(season_length=7 if len(history) >= 21 else 1).fit(history).model_
            except Exception:  # as in autoets_method: too short or degenerate
                models["(failed: mean-28)"] += 1
                continue
            models[fitted["method"]] += 1
            alphas.append(float(fitted["par"][0]))
        alpha = f"{statistics.median(alphas):.4f} [{min(alphas):.4f}-{max(alphas):.4f}]" if alphas else "-"
        print(f"    {label:<20} spend on {np.mean(values > 0):.0%} of days; "
              + ", ".join(f"{m} x{k}" for m, k in models.most_common()) + f"; alpha median {alpha}")


@dataclass
class Scores:
    errors: list[float] = field(default_factory=list)
    signed: list[float] = field(default_factory=list)  # forecast / actual - 1
    forecast_sum: float = 0.0
    actual_sum: float = 0.0
    covered: list[bool] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, forecast: float, actual: float) -> None:
        self.errors.append(abs(forecast - actual) / actual)
        self.signed.append(forecast / actual - 1)
        self.forecast_sum += forecast
        self.actual_sum += actual

    @property
    def bias(self) -> str:
        """Median signed error (the issue's "sat a median 15% above") and the total bias
        (sum of forecasts over sum of actuals: what an unbiased mean gets right)."""
        total = self.forecast_sum / self.actual_sum - 1 if self.actual_sum else 0.0
        return f"{100 * statistics.median(self.signed):+.1f}% {100 * total:+.1f}%"


OURS = ("ours (median)", "ours (mean)")


def cutoffs(n: int, offset: int) -> range:
    """The cutoff grid, moved ``offset`` days within one step (a whole step would only drop
    the first cutoff; on a 69-day series ``--offset 14`` left no cutoff at all)."""
    first, step = (120, 28) if n >= 200 else (28, 3)
    return range(first + offset % step, n - HORIZON + 1, step)


def backtest(series: list[tuple[str, date, np.ndarray]], methods: dict[str, Callable[[np.ndarray], float]],
             offset: int = 0) -> tuple[dict[str, Scores], dict[str, dict[str, Scores]]]:
    """Scores per method over the set, and per series."""
    from cascadeflow_cli.analytics.forecast import CostForecaster

    forecaster = CostForecaster(confidence=CONFIDENCE)
    pooled = {name: Scores() for name in [*OURS, *methods]}
    per_series: dict[str, dict[str, Scores]] = {}
    for label, start, values in series:
        mine = per_series.setdefault(label, {name: Scores() for name in pooled})
        dates = [start + timedelta(days=i) for i in range(len(values))]
        for cutoff in cutoffs(len(values), offset):
            actual = float(values[cutoff:cutoff + HORIZON].sum())
            if actual <= 0:
                continue  # a percentage error of a zero month is undefined
            history = values[:cutoff]
            began = time.perf_counter()
            prediction = forecaster.forecast(list(zip(dates[:cutoff], history.tolist(), strict=True)),
                                             horizon=HORIZON, as_of=dates[cutoff])
            took = time.perf_counter() - began
            for name, point in zip(OURS, (prediction.median, prediction.mean), strict=True):
                for scores in (pooled[name], mine[name]):
                    scores.add(point, actual)
                    scores.covered.append(prediction.lower <= actual <= prediction.upper)
                    scores.seconds += took
            for name, method in methods.items():
                began = time.perf_counter()
                point = method(history)
                took = time.perf_counter() - began
                for scores in (pooled[name], mine[name]):
                    scores.add(point, actual)
                    scores.seconds += took
    return pooled, per_series


def ratio_range(ours: list[float], baseline: list[float], draws: int = 2000) -> tuple[float, float, float]:
    """One series' ratio of median APEs (ours over the baseline) and the 90% range of that
    ratio over bootstrap resamples of its cutoffs (28 days apart: about independent). On
    21 cutoffs the range spans about +-40%: a 5% per-series margin is inside the noise."""
    a, b = np.array(ours), np.array(baseline)
    ratio = float(np.median(a)) / max(float(np.median(b)), 1e-9)
    idx = np.random.default_rng(0).integers(0, len(a), (draws, len(a)))
    boot = np.median(a[idx], axis=1) / np.maximum(np.median(b[idx], axis=1), 1e-9)
    lo, hi = np.quantile(boot, [0.05, 0.95])
    return ratio, float(lo), float(hi)


def report(title: str, scores: dict[str, Scores],
           per_series: dict[str, dict[str, Scores]]) -> dict[str, bool]:
    n = len(scores[OURS[0]].errors)
    print(f"\n{title}: {len(per_series)} series, {n} cutoffs, horizon {HORIZON} days")
    print(f"  {'method':<26} {'median APE':>10} {'mean APE':>9} {'90% cover':>9} {'bias: median, total':>20} "
          f"{'seconds':>8}")
    for name, s in scores.items():
        if not s.errors:
            continue
        cover = f"{100 * np.mean(s.covered):.0f}%" if s.covered else "-"
        print(f"  {name:<26} {100 * statistics.median(s.errors):>9.1f}% "
              f"{100 * statistics.mean(s.errors):>8.1f}% {cover:>9} {s.bias:>20} {s.seconds:>8.1f}")
    if not n:
        return {}
    ours = statistics.median(scores[OURS[0]].errors)
    others = {k: statistics.median(v.errors) for k, v in scores.items() if k not in OURS}
    cover = float(np.mean(scores[OURS[0]].covered))
    worst = []
    for label, mine in per_series.items():
        if not mine[OURS[0]].errors:
            continue
        ratio, lo, hi = ratio_range(mine[OURS[0]].errors, mine["seasonal naive"].errors)
        worst.append((ratio, label, lo, hi))
    worst.sort(reverse=True)
    checks = {"lowest median APE": ours < min(others.values()),
              "coverage 85-95%": 0.85 <= cover <= 0.95,
              "every series <= 1.05 x seasonal naive": worst[0][0] <= 1.05}
    print("  ours (median) / seasonal naive median APE, worst series [bootstrap 90% range over its cutoffs]: "
          + ", ".join(f"{label} {ratio:.2f} [{lo:.2f}-{hi:.2f}]" for ratio, label, lo, hi in worst[:3]))
    clear = [label for _, label, lo, _ in worst if lo > 1.05]
    print(f"  series whose whole 90% range is above 1.05: {len(clear)} of {len(worst)}"
          + (f" ({', '.join(clear)})" if clear else ""))
    print("  targets: " + "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in checks.items()))
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-autoets", action="store_true", help="skip statsforecast AutoETS")
    parser.add_argument("--offset", type=int, default=0,
                        help="move every cutoff N days later, within one grid step (a robustness check)")
    parser.add_argument("--backgrounds", type=int, default=0,
                        help="another draw of the synthetic series (seeds + K x BACKGROUND_STEP)")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of: {', '.join(SETS)}")
    parser.add_argument("--autoets-models", action="store_true",
                        help="print the model and smoothing rate AutoETS fits per series (over the cutoffs)")
    args = parser.parse_args(argv)

    methods: dict[str, Callable[[np.ndarray], float]] = {
        "seasonal naive": seasonal_naive, "last 28 days' mean x 30": mean28, "seed (SES x30)": seed_method}
    autoets = None if args.no_autoets else autoets_method()
    if autoets is not None:
        methods["AutoETS (sf)"] = autoets
    elif not args.no_autoets:
        print("statsforecast is not installed: AutoETS is left out (pip install -e '.[bench]')",
              file=sys.stderr)
    summary = {}
    for name in args.sets.split(","):
        series = load_set(name.strip(), args.backgrounds)
        if not series:
            print(f"{name}: no data here, skipped", file=sys.stderr)
            continue
        scores = backtest(series, methods, args.offset)
        drawn = f", background draw {args.backgrounds}" if args.backgrounds else ""
        summary[name] = report(f"{name} (cutoff offset {args.offset}{drawn})", *scores)
        if args.autoets_models and autoets is not None:
            print("  AutoETS's fitted model per series (cutoffs of this grid):")
            autoets_models(series, args.offset)
    print("\nsummary")
    for name, checks in summary.items():
        print(f"  {name:<16} " + "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in checks.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
