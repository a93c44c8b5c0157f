"""Rolling-origin backtest of the 30-day spend forecast, side by side with baselines.

Data sets:

* ``dev``: /work/shared/data/spend/daily_series_dev.csv (``series,date,value``; 2,905 rows,
  Wikipedia page views standing in for spend). The rows are taken as consecutive days
  (the file skips 59 calendar days; reading it by row reproduces the tracker's baseline
  figures: seed 24.1 %, seasonal naive 27.4 %, AutoETS 31.2 % median APE).
* ``synthetic``: realistic per-user spend made here with a fixed seed: requests per day
  with a weekday/weekend pattern and growth, per-request prices, one runaway-script spike,
  a switch to a dearer model, a quiet holiday stretch, zero days (``synthetic_users``).

Protocol: cutoffs every 28 days once 120 days of history exist; each method sees the
history strictly before the cutoff and forecasts the total of the next 30 days. Reported:
median and mean absolute percentage error of that total, and for ours how often the 90 %
interval of the total covers the actual.

Methods: ours (``CostForecaster``; its predictive median is the point forecast, its mean
is shown too), the seed's method (SES alpha 0.3 over the non-zero daily values, times 30),
seasonal naive (last 28 days scaled to 30) and statsforecast ``AutoETS(season_length=7)``
(skipped, with a note, when statsforecast is not installed).

    python bench/forecast_backtest.py [--data CSV] [--users 10] [--no-autoets] [--offset N]
                                      [--dev-only]
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

DEFAULT_DATA = Path("/work/shared/data/spend/daily_series_dev.csv")
FIRST_CUTOFF = 120
STEP = 28
HORIZON = 30
CONFIDENCE = 0.9


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


# --- data ---------------------------------------------------------------------------


def read_dev(path: Path) -> tuple[date, np.ndarray]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise SystemExit(f"{path}: no rows")
    start = date.fromisoformat(rows[0]["date"])
    return start, np.array([float(r["value"]) for r in rows])


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
    return float(history[-28:].sum() * HORIZON / 28)


def autoets_method() -> Callable[[np.ndarray], float] | None:
    try:
        from statsforecast.models import AutoETS
    except ImportError:
        return None

    def forecast(history: np.ndarray) -> float:
        result = AutoETS(season_length=7).forecast(y=history.astype(float), h=HORIZON)
        return float(np.sum(result["mean"]))

    return forecast


@dataclass
class Scores:
    errors: list[float] = field(default_factory=list)
    covered: list[bool] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, forecast: float, actual: float) -> None:
        self.errors.append(abs(forecast - actual) / actual)


def backtest(series: list[tuple[date, np.ndarray]], methods: dict[str, Callable[[np.ndarray], float]],
             offset: int = 0) -> dict[str, Scores]:
    from cascadeflow_cli.analytics.forecast import CostForecaster

    forecaster = CostForecaster(confidence=CONFIDENCE)
    scores = {name: Scores() for name in ["ours (median)", "ours (mean)", *methods]}
    for start, values in series:
        dates = [start + timedelta(days=i) for i in range(len(values))]
        for cutoff in range(FIRST_CUTOFF + offset, len(values) - HORIZON + 1, STEP):
            actual = float(values[cutoff:cutoff + HORIZON].sum())
            if actual <= 0:
                continue  # a percentage error of a zero month is undefined
            history = values[:cutoff]
            began = time.perf_counter()
            prediction = forecaster.forecast(list(zip(dates[:cutoff], history.tolist(), strict=True)),
                                             horizon=HORIZON, as_of=dates[cutoff])
            took = time.perf_counter() - began
            for name, point in (("ours (median)", prediction.median), ("ours (mean)", prediction.mean)):
                scores[name].add(point, actual)
                scores[name].covered.append(prediction.lower <= actual <= prediction.upper)
                scores[name].seconds += took
            for name, method in methods.items():
                began = time.perf_counter()
                scores[name].add(method(history), actual)
                scores[name].seconds += time.perf_counter() - began
    return scores


def report(title: str, scores: dict[str, Scores]) -> None:
    n = len(next(iter(scores.values())).errors)
    print(f"\n{title}: {n} cutoffs, horizon {HORIZON} days")
    print(f"  {'method':<18} {'median APE':>10} {'mean APE':>9} {'90% cover':>9} {'seconds':>8}")
    for name, s in scores.items():
        cover = f"{100 * np.mean(s.covered):.0f}%" if s.covered else "-"
        print(f"  {name:<18} {100 * statistics.median(s.errors):>9.1f}% "
              f"{100 * statistics.mean(s.errors):>8.1f}% {cover:>9} {s.seconds:>8.1f}")
    ours = scores["ours (median)"]
    others = {k: v for k, v in scores.items() if not k.startswith("ours")}
    best_median = min(statistics.median(s.errors) for s in others.values())
    best_mean = min(statistics.mean(s.errors) for s in others.values())
    print(f"  ours (median) lowest on median APE: {statistics.median(ours.errors) < best_median}; "
          f"on mean APE: {statistics.mean(ours.errors) < best_mean}; "
          f"coverage in 85-95%: {0.85 <= np.mean(ours.covered) <= 0.95}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="series,date,value CSV")
    parser.add_argument("--users", type=int, default=10, help="synthetic users (730 days each)")
    parser.add_argument("--no-autoets", action="store_true", help="skip statsforecast AutoETS")
    parser.add_argument("--offset", type=int, default=0,
                        help="move every cutoff N days later (a robustness check of the grid)")
    parser.add_argument("--dev-only", action="store_true", help="skip the synthetic users")
    args = parser.parse_args(argv)

    methods: dict[str, Callable[[np.ndarray], float]] = {
        "seed (SES x30)": seed_method, "seasonal naive": seasonal_naive}
    autoets = None if args.no_autoets else autoets_method()
    if autoets is not None:
        methods["AutoETS (sf)"] = autoets
    elif not args.no_autoets:
        print("statsforecast is not installed: AutoETS is left out (pip install statsforecast)",
              file=sys.stderr)

    if args.data.exists():
        report(f"dev series {args.data.name} (cutoff offset {args.offset})",
               backtest([read_dev(args.data)], methods, args.offset))
    else:
        print(f"{args.data}: not found, dev series skipped", file=sys.stderr)
    if args.dev_only:
        return 0
    users = synthetic_users(args.users)
    report(f"synthetic spend, {len(users)} users x 730 days (seed 2026; cutoff offset {args.offset})",
           backtest([(u.start, u.values) for u in users], methods, args.offset))
    return 0


if __name__ == "__main__":
    sys.exit(main())
