"""The oracle ceiling of x3-spike and x0.2-drop recall at a stated false-alarm rate on the
synthetic sets of anomaly_eval.py: what a detector that knew each series' true expected
day and its exact noise distribution could reach.

Each synthetic series is regenerated from its generator's own parameters
(forecast_backtest.py's ``synthetic_user`` and ``family``, the same seeds and background
draws as anomaly_eval.py), and for every day from the 60th its log deviation from the
true expected day is drawn afresh DRAWS times (for the synthetic users: the busy/quiet
factor, the Poisson count and the per-request noise, with the detector's log offset of 5%
of the typical day). The oracle's threshold on each side is that day's own quantile at
half the rate (medium 3 per 1,000: its 99.85th and 0.15th percentiles), so it pages at
the stated rate on every day, quiet or busy; a x3 spike (a x0.2 drop) on a day is found
when it carries that day's deviation past the threshold. The mean over days and series is
the best recall any detector can have at that rate on that set: no baseline or scale
removes the day's own noise. (The injection's $0.50 minimum change is not applied here; it
moves an event by a day or two at most.)

Beside it, ours on every day (``--no-ours`` to skip): each clean series scanned once at
medium, and every day from the 60th given a x3 spike (a x0.2 drop) in turn, scored against
that day's own baseline and noise scale and the spike or drop threshold fitted to the
clean scores, the event's own effect on them left out (measured +1.6% on the scale with
all of anomaly_eval's spikes and drops injected), and the $0.50 minimum change applied.
Thousands of days a set instead of anomaly_eval's ~150 injected spikes (whose recall moves
by +-0.04 from one seed or draw to the next: more than most baseline ideas), so a change
to the baseline or scale shows here first; it reads higher than anomaly_eval (no injected
shifts, no kind to get wrong), so compare it with itself, before and after.

    python bench/anomaly_ceiling.py [--rate 3] [--backgrounds 0] [--draws 4000] [--no-ours]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from anomaly_eval import BACKGROUND_STEP, MIN_CHANGE, WARM_UP, family_series, synthetic_series

Sampler = Callable[[np.random.Generator, int], np.ndarray]  # (rng, draws) -> (draws, days) log deviations


def user_sampler(seed: int, days: int = 730) -> Sampler:
    """forecast_backtest.synthetic_user's noise around its expected day (clean: no events)."""
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    weekday = (0 + t) % 7  # the users start on a Monday (2025-01-06)
    base = rng.uniform(30, 400)
    weekend = rng.uniform(0.03, 0.4)
    growth = rng.uniform(0.0, 1.2)
    rate = base * np.where(weekday >= 5, weekend, 1.0) * (1 + growth) ** (t / 365)
    offset = 0.05 * float(np.median(rate))

    def draw(gen: np.random.Generator, n: int) -> np.ndarray:
        busy = rate * np.exp(gen.normal(0, 0.25, (n, days)))
        count = gen.poisson(busy)
        y = count * np.exp(gen.normal(0, 0.6 / np.sqrt(count + 1)))
        return np.log(y + offset) - np.log(rate + offset)

    return draw


def family_sampler(kind: str, seed: int, days: int = 730) -> Sampler:
    """forecast_backtest.family's noise around its expected day (the random walk of 'no
    weekly' is the expected day: an oracle knows it)."""
    rng = np.random.default_rng(seed)
    rng.uniform(0.5, 50.0)  # level
    rng.uniform(0.2, 0.8)  # weekend factor
    if kind == "heavy tails":
        df = rng.uniform(1.5, 3.0)
        return lambda gen, n: 0.35 * gen.standard_t(df, (n, days)).clip(-8, 8)
    if kind == "trend":
        rng.uniform(np.log(0.3), np.log(3.0))  # growth
        sigma = rng.uniform(0.15, 0.6)
    elif kind == "no weekly":
        rng.normal(0, 0.03, days)  # the walk
        sigma = rng.uniform(0.1, 0.5)
    else:
        raise ValueError(kind)
    return lambda gen, n: gen.normal(0, sigma, (n, days))


def oracle(samplers: list[Sampler], rate: float, draws: int) -> tuple[float, float]:
    """Mean recall of x3 spikes and x0.2 drops over the days from WARM_UP on."""
    gen = np.random.default_rng(0)
    spikes, drops = [], []
    for sample in samplers:
        d = sample(gen, draws)[:, WARM_UP:]
        low, high = np.quantile(d, [rate / 2000, 1 - rate / 2000], axis=0)
        spikes.append(np.mean(d + np.log(3.0) > high))
        drops.append(np.mean(d - np.log(5.0) < low))
    return float(np.mean(spikes)), float(np.mean(drops))


def ours_every_day(series: list[np.ndarray], rate: float) -> tuple[float, float, float]:
    """Our recall of a x3 spike and a x0.2 drop put on each day in turn (baseline, scale and
    fitted thresholds of the clean series held), and the share of clean days flagged per
    1,000 (before the minimum change)."""
    from datetime import date

    from cascadeflow_cli.analytics.anomaly import AnomalyDetector, _scan
    from cascadeflow_cli.analytics.tails import thresholds

    found = {"spike": [0, 0], "drop": [0, 0]}
    flagged = []
    for values in series:
        trace: list[tuple[int, float, float, float]] = []
        _scan(date(2020, 1, 6), values, AnomalyDetector("medium"), trace)
        scores = np.full(len(values), np.nan)
        for t, score, _, _ in trace:
            scores[t] = score
        upper, lower = thresholds(scores[28:], rate)
        rows = np.array([row for row in trace if np.isfinite(row[1]) and row[0] >= WARM_UP])
        days, score, scale, expected = rows[:, 0].astype(int), rows[:, 1], rows[:, 2], rows[:, 3]
        flagged.append(float(np.mean((score >= upper) | (score <= -lower))))
        y = values[days]
        offset = 0.05 * float(np.median(values[values > 0]))  # the detector's log offset, about
        gain = np.clip(1 - offset / (expected + offset), 1 / 3, 1)  # day_baseline.log_gain
        for kind, factor in (("spike", 3.0), ("drop", 0.2)):
            moved = score + (np.log(factor * y + offset) - np.log(y + offset)) / gain / scale
            passed = moved >= upper if kind == "spike" else moved <= -lower
            reportable = abs(factor - 1) * y >= MIN_CHANGE
            found[kind][0] += int(np.sum(passed & reportable))
            found[kind][1] += int(np.sum(reportable))
    spike, drop = (found[k][0] / max(found[k][1], 1) for k in ("spike", "drop"))
    return spike, drop, 1000 * float(np.mean(flagged))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=3.0, help="false alarms per 1,000 days (medium: 3)")
    parser.add_argument("--backgrounds", type=int, default=0, help="anomaly_eval's --backgrounds draw")
    parser.add_argument("--draws", type=int, default=4000, help="fresh draws of each day's noise")
    parser.add_argument("--no-ours", action="store_true", help="the oracle only")
    args = parser.parse_args(argv)
    step = BACKGROUND_STEP * args.backgrounds
    sets: dict[str, list[Sampler]] = {"synthetic users": [user_sampler(2026 + step + i) for i in range(10)]}
    for kind in ("heavy tails", "trend", "no weekly"):
        sets[kind] = [family_sampler(kind, 4100 + step + 97 * i + len(kind)) for i in range(10)]
    print(f"oracle recall at {args.rate:g} false alarms per 1,000 days (background draw {args.backgrounds}): "
          "true expected day, each day's own noise quantiles")
    for name, samplers in sets.items():
        spike, drop = oracle(samplers, args.rate, args.draws)
        line = f"  {name:<16} x3 spikes {spike:.2f} (target 0.9), x0.2 drops {drop:.2f} (target 0.8)"
        if not args.no_ours:
            series = (synthetic_series(10, args.backgrounds) if name == "synthetic users"
                      else family_series(name, args.backgrounds))
            ours_spike, ours_drop, flagged = ours_every_day(series, args.rate)
            line += (f"; ours on every day {ours_spike:.3f} / {ours_drop:.3f} "
                     f"({flagged:.1f} clean days flagged per 1,000)")
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
