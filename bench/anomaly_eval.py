"""Precision and recall of the anomaly detector on injected events, beside the seed's.

Series (each made into daily USD, days without spend zero):

* dev: /work/shared/data/spend/daily_series_dev.csv (page views standing in for spend;
  rows taken as consecutive days), bursty, with real events of its own;
* synthetic: ten per-user spend histories of 730 days (``synthetic_users`` from
  forecast_backtest.py: weekday/weekend pattern, growth, busy and quiet days; made without
  their own switch, spike and holiday so that the injected events are the only ones);
* sample history: sample_data/history.csv, six users x 120 days (few requests a day, so
  noisy days; dave's dearer model and frank's spike are events of its own).

Synthetic and sample-history users are scaled so that their median day costs U($3, $30)
(on a $0.30-a-day user nearly every event would fall under the $0.50 minimum change).

Injection (fixed seeds; each series injected afresh per seed; ``--seeds`` seeds, the
sample history five times as many since it is short): events at random days at least 30
days apart, starting after 60 days of history, each placed on the first day from its
random pick on whose change is at least $0.50 (the detector's documented minimum:
smaller changes must not page anyone):

* spike: that day's spend times U(2, 4);
* drop: that day's spend times 0.2;
* shift: every day from the start on times U(1.8, 3.0) or U(0.3, 0.55) (a lasting change;
  one event however many days it lasts).

Matching: a spike or drop is found by a detection within one day of it (day - 1 .. day
+ 1); a shift by a detection from the day before its start to 3 days after. Each event
is matched at most once; every other detection is a false positive, except those within
one day of one of the series' own anomalies (the dev series' real bursts, the sample
history's events: neither injected events nor errors): those are left out of both
counts. The series' own anomalies are found on the clean series by one fixed rule, the
same for every detector (``own_anomalies``), with hindsight and at the injected events'
smallest sizes: a day at least twice or at most half the median of the week either side
of it, or the first day of a week whose median is at least x1.8 or at most /1.8 that of
the week before. (They used to be the detections of the detector under test itself on
the clean series: circular.) The synthetic backgrounds have no events of their own, so
every unmatched detection there counts. "kind must match" also requires the kind to
agree (spike/drop/shift); the seed's detector has no kinds, so it is scored by date
only, and ours is shown both ways. A last table pools the three sets.

The seed (SEED.md 1.7): the z-score of each day with spend against the mean and
standard deviation of all those days (the day itself included); thresholds low 3.0,
medium 2.5, high 2.0.

    python bench/anomaly_eval.py [--data CSV] [--history CSV] [--users 10] [--seed 7] [--seeds 3]
                                 [--backgrounds 0] [--sweep]
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from forecast_backtest import ADEXCHANGE, DEFAULT_DATA, families, read_dev, read_series, synthetic_users

SENSITIVITIES = ("low", "medium", "high")
SEED_THRESHOLDS = {"low": 3.0, "medium": 2.5, "high": 2.0}
MIN_GAP = 30
SPIKE = 3.0  # the target: recall >= 0.9 for x3 spikes, >= 0.8 for x0.2 drops at medium
RATES = {"low": 1.0, "medium": 3.0, "high": 10.0}  # stated false alarms per 1,000 ordinary days
CEILING_DAYS = 600  # judged days a series needs for its own 99.85th percentile (about its top one)
MIN_CHANGE = 0.5  # USD: the detector's default minimum change; smaller events are not reportable
WARM_UP = 60
HISTORY = Path(__file__).resolve().parent.parent / "sample_data" / "history.csv"


@dataclass(frozen=True)
class Event:
    kind: str  # spike | drop | shift
    day: int
    factor: float


@dataclass(frozen=True)
class Detection:
    day: int
    kind: str | None  # None: the detector does not say


@dataclass
class Tally:
    events: int = 0
    found: int = 0
    detections: int = 0
    correct: int = 0
    by_kind: dict[str, list[int]] = field(default_factory=dict)  # kind -> [events, found]

    def add(self, other: Tally) -> None:
        self.events += other.events
        self.found += other.found
        self.detections += other.detections
        self.correct += other.correct
        for kind, (events, found) in other.by_kind.items():
            counts = self.by_kind.setdefault(kind, [0, 0])
            counts[0] += events
            counts[1] += found

    @property
    def precision(self) -> float:
        return self.correct / self.detections if self.detections else 1.0

    @property
    def recall(self) -> float:
        return self.found / self.events if self.events else 0.0


def inject(values: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[Event]]:
    """Events at random days; each moved on to the next day whose change is reportable
    (at least MIN_CHANGE in USD: for a shift, the median change over its first week)."""
    out = values.copy()
    events: list[Event] = []
    warm_up = min(WARM_UP, max(35, len(values) // 2))  # short series (69 days): from day 35
    day = warm_up + int(rng.integers(0, MIN_GAP // 2 if len(values) < 2 * WARM_UP else MIN_GAP))
    while day < len(values) - 7:
        kind = str(rng.choice(["spike", "drop", "shift"]))
        if kind == "spike":
            factor = SPIKE
        elif kind == "drop":
            factor = 0.2
        else:
            factor = float(rng.uniform(1.8, 3.0) if rng.random() < 0.5 else rng.uniform(0.3, 0.55))
        while day < len(values) - 7 and _change(out, day, kind, factor) < MIN_CHANGE:
            day += 1
        if day >= len(values) - 7:
            break
        if kind == "shift":
            out[day:] *= factor
        else:
            out[day] *= factor
        events.append(Event(kind, day, factor))
        day += MIN_GAP + int(rng.integers(0, MIN_GAP))
    return out, events


def _change(values: np.ndarray, day: int, kind: str, factor: float) -> float:
    if kind == "shift":
        return float(np.median(values[day:day + 7])) * abs(factor - 1)
    return float(values[day]) * abs(factor - 1)


def ours(sensitivity: str, threshold: float | None = None) -> Callable[[np.ndarray], list[Detection]]:
    """Our detector at a sensitivity, or (``threshold``) at any robust-score threshold."""
    from cascadeflow_cli.analytics.anomaly import AnomalyDetector

    detector = AnomalyDetector(sensitivity)
    if threshold is not None:
        detector.fixed = threshold
    start = date(2020, 1, 6)

    def detect(values: np.ndarray) -> list[Detection]:
        rows = [(start + timedelta(days=i), float(v)) for i, v in enumerate(values)]
        return [Detection((a.date - start).days, a.kind) for a in detector.detect(rows)]

    return detect


def seed_zscore(sensitivity: str) -> Callable[[np.ndarray], list[Detection]]:
    threshold = SEED_THRESHOLDS[sensitivity]

    def detect(values: np.ndarray) -> list[Detection]:
        days = np.nonzero(values > 0)[0]  # the seed groups ledger entries by day
        costs = values[days]
        if len(costs) < 7:
            return []
        mean, std = costs.mean(), costs.std()
        if std <= 0:
            return []
        z = np.abs(costs - mean) / std
        return [Detection(int(d), None) for d in days[z > threshold]]

    return detect


def window(event: Event) -> tuple[int, int]:
    return (event.day - 1, event.day + 3) if event.kind == "shift" else (event.day - 1, event.day + 1)


def score(events: list[Event], detections: list[Detection], natural: set[int], strict: bool,
          tally: Tally) -> None:
    unmatched = sorted(detections, key=lambda d: d.day)
    tally.events += len(events)
    for event in events:
        counts = tally.by_kind.setdefault(event.kind, [0, 0])
        counts[0] += 1
        lo, hi = window(event)
        for d in unmatched:
            if lo <= d.day <= hi and (not strict or d.kind is None or d.kind == event.kind):
                unmatched.remove(d)
                tally.found += 1
                tally.correct += 1
                tally.detections += 1
                counts[1] += 1
                break
    for d in unmatched:
        if any(abs(d.day - n) <= 1 for n in natural):
            continue  # the series' own anomaly, found on the clean series as well
        tally.detections += 1


OWN_DAY_FACTOR = 2.0  # the smallest injected spike (a drop: the other way round)
OWN_SHIFT_FACTOR = 1.8  # the smallest injected shift up (down: /1.8, about x0.55)
OWN_WEEK = 7


def own_anomalies(values: np.ndarray) -> set[int]:
    """The clean series' own anomalies, by one rule for every detector (with hindsight:
    this labels the data, it does not detect): a day at least OWN_DAY_FACTOR times or at
    most 1/OWN_DAY_FACTOR the median of the OWN_WEEK days either side of it, or the first
    day of a week whose median is at least OWN_SHIFT_FACTOR times or at most
    1/OWN_SHIFT_FACTOR that of the week before. Days without spend are left alone."""
    days: set[int] = set()
    n = len(values)
    for t in range(n):
        if values[t] <= 0:
            continue
        around = np.r_[values[max(0, t - OWN_WEEK):t], values[t + 1:t + 1 + OWN_WEEK]]
        around = around[around > 0]
        if len(around) and not (1 / OWN_DAY_FACTOR < values[t] / np.median(around) < OWN_DAY_FACTOR):
            days.add(t)
        before, after = values[max(0, t - OWN_WEEK):t], values[t:t + OWN_WEEK]
        if len(before) == OWN_WEEK and len(after) == OWN_WEEK:
            old, new = float(np.median(before)), float(np.median(after))
            if old > 0 and new > 0 and not (1 / OWN_SHIFT_FACTOR < new / old < OWN_SHIFT_FACTOR):
                days.add(t)
    return days


def evaluate(series: list[np.ndarray], detectors: dict[str, Callable[[np.ndarray], list[Detection]]],
             seeds: list[int], has_own_anomalies: bool = False) -> dict[tuple[str, bool], Tally]:
    """Tallies per (detector, strict) over every series and injection seed (each series
    is injected afresh per seed). ``has_own_anomalies``: detections within a day of
    ``own_anomalies`` of the clean series are left out (False: the series has none, every
    unmatched detection is an error)."""
    tallies: dict[tuple[str, bool], Tally] = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for values in series:
            natural = own_anomalies(values) if has_own_anomalies else set()
            injected, events = inject(values, rng)
            for name, detector in detectors.items():
                found = detector(injected)  # once, scored both ways
                for strict in (True, False):
                    score(events, found, natural, strict, tallies.setdefault((name, strict), Tally()))
    return tallies


FalseAlarms = dict[str, tuple[dict[str, int], int, int]]  # sensitivity -> (by kind, days, could alarm)


def false_alarms(series: list[np.ndarray], has_own_anomalies: bool) -> FalseAlarms:
    """Per sensitivity, (detections by kind, judged days, days that could alarm) on the
    clean series: every detection is a false alarm, except within a day of the series'
    own anomalies (real sets). A day could alarm when it is judged for a spike or drop and
    its spend is at least the minimum change from the day expected of it (`_money_days`):
    on an intermittent series most days are zero against an expected zero, and no
    threshold can make them page."""
    out = {}
    naturals = [own_anomalies(values) if has_own_anomalies else set() for values in series]
    could = sum(len(_money_days(values) - _near(natural, len(values)))
                for values, natural in zip(series, naturals, strict=True))
    for sensitivity in SENSITIVITIES:
        detect = ours(sensitivity)
        kinds = {"spike": 0, "drop": 0, "shift": 0}
        days = 0
        for values, natural in zip(series, naturals, strict=True):
            # the days an alarm could count on: judged, and not within a day of an own
            # anomaly (alarms there are left out; so are the days, else the rate is low)
            days += sum(1 for t in range(28, len(values)) if not any(abs(t - n) <= 1 for n in natural))
            for d in detect(values):
                if not any(abs(d.day - n) <= 1 for n in natural):
                    kinds[d.kind or "spike"] += 1
        out[sensitivity] = (kinds, days, could)
    return out


def _near(days: set[int], n: int) -> set[int]:
    """The days within one day of ``days``."""
    return {t + k for t in days for k in (-1, 0, 1) if 0 <= t + k < n}


def _money_days(values: np.ndarray) -> set[int]:
    """The days from the 28th on that ``_scan`` judges for a spike or drop and whose spend
    differs from the day expected of it by at least MIN_CHANGE (the detector's minimum:
    no other day can page, at any threshold)."""
    from cascadeflow_cli.analytics.anomaly import AnomalyDetector, _scan

    trace: list[tuple[int, float, float, float]] = []
    _scan(date(2020, 1, 6), values, AnomalyDetector("medium"), trace)
    return {t for t, s, _, expected in trace
            if t >= 28 and np.isfinite(s) and abs(float(values[t]) - expected) >= MIN_CHANGE}


def poisson_p(count: int, expected: float) -> float:
    """Two-sided p-value of ``count`` alarms where the stated rate expects ``expected``
    (twice the smaller Poisson tail, at most 1): whether a miss of x1.5 is the rate or
    the counting (237 days at low expect 0.24 alarms: 0 and 1 are both the stated rate)."""
    term, cdf = math.exp(-expected), 0.0
    for k in range(count + 1):
        cdf += term
        below = cdf
        term *= expected / (k + 1)
    above = 1.0 - (below - math.exp(-expected) * expected ** count / math.factorial(count))
    return min(1.0, 2 * min(below, above))


def poisson_range(expected: float, mass: float = 0.9) -> tuple[int, int]:
    """The central ``mass`` range of a Poisson count with mean ``expected``: the smallest
    ``lo`` and ``hi`` with P(X < lo) <= (1 - mass) / 2 and P(X > hi) <= (1 - mass) / 2
    (what a perfectly calibrated detector's count lands in ``mass`` of the time)."""
    tail = (1 - mass) / 2
    term = cdf = math.exp(-expected)
    k, lo = 0, None
    while True:
        if lo is None and cdf > tail:
            lo = k
        if cdf >= 1 - tail:
            return lo if lo is not None else k, k
        k += 1
        term *= expected / k
        cdf += term


def print_false_alarms(counts: FalseAlarms) -> tuple[bool, bool]:
    """Prints each sensitivity's false alarms; returns (within x1.5 at every one, inside
    the Poisson 90% range of the count at the stated rate at every one): on a few
    hundred days x1.5 cannot be met by counting, and a miss inside that range is the
    counting, not the calibration."""
    ok = counted = True
    cells = []
    could_cells = []
    for sensitivity, (kinds, days, could) in counts.items():
        alarms = sum(kinds.values())
        rate = 1000 * alarms / days if days else 0.0
        within = RATES[sensitivity] / 1.5 <= rate <= RATES[sensitivity] * 1.5
        ok &= within
        expected = RATES[sensitivity] * days / 1000
        p = poisson_p(alarms, expected)
        lo, hi = poisson_range(expected)
        inside = lo <= alarms <= hi
        counted &= inside
        split = "/".join(f"{1000 * kinds[k] / days:.1f}" if days else "0" for k in ("spike", "drop", "shift"))
        verdict = "within" if within else "NOT within"
        scale = 1000 / days if days else 0.0
        where = "inside" if inside else "OUTSIDE"
        cells.append(f"{sensitivity} {rate:.1f} = {split} ({alarms} in {days} days; stated "
                     f"{RATES[sensitivity]:g}, {verdict} x1.5; the stated rate's 90% range {lo}-{hi} "
                     f"alarms = {lo * scale:.1f}-{hi * scale:.1f}: {where}, Poisson p {p:.2f})")
        spikes_drops = kinds["spike"] + kinds["drop"]
        could_cells.append(f"{sensitivity} {1000 * spikes_drops / could if could else 0.0:.1f}")
    print("  false alarms per 1,000 clean days (total = spike/drop/shift): " + "; ".join(cells))
    share = counts["medium"][2] / counts["medium"][1] if counts["medium"][1] else 0.0
    print(f"  spikes and drops per 1,000 days that could alarm ({share:.0%} of the days: judged, spend at "
          f"least ${MIN_CHANGE:.2f} from the expected day): " + ", ".join(could_cells))
    return ok, counted


def report(title: str, series: list[np.ndarray], seeds: list[int], has_own_anomalies: bool,
           pooled: dict[tuple[str, bool], Tally]) -> None:
    print(f"\n{title}")
    rates_ok, counted = print_false_alarms(false_alarms(series, has_own_anomalies))
    print(f"  {'detector':<28} {'sens.':<7} {'events':>6} {'found':>6} {'detections':>10} "
          f"{'precision':>9} {'recall':>7}  recall by kind")
    detectors: dict[str, Callable[[np.ndarray], list[Detection]]] = {}
    for sensitivity in SENSITIVITIES:
        detectors[f"ours {sensitivity}"] = ours(sensitivity)
        detectors[f"seed {sensitivity}"] = seed_zscore(sensitivity)
    tallies = evaluate(series, detectors, seeds, has_own_anomalies)
    for sensitivity in SENSITIVITIES:
        for label, key in (("ours (kind must match)", (f"ours {sensitivity}", True)),
                           ("ours (date only)", (f"ours {sensitivity}", False)),
                           ("seed z-score (date only)", (f"seed {sensitivity}", False))):
            t = tallies[key]
            pooled.setdefault(key, Tally()).add(t)
            print_row(label, sensitivity, t)
    print(ceiling(series, has_own_anomalies))
    print(thresholds_and_scores(series, seeds))
    kinds = tallies[("ours medium", True)].by_kind
    spikes, drops = kinds.get("spike", [0, 0]), kinds.get("drop", [0, 0])
    spike_recall = spikes[1] / spikes[0] if spikes[0] else float("nan")
    drop_recall = drops[1] / drops[0] if drops[0] else float("nan")
    print(f"  targets: false alarms within x1.5 at every sensitivity: {'yes' if rates_ok else 'NO'} "
          f"(inside the stated rate's Poisson 90% range at every one: {'yes' if counted else 'NO'}); "
          f"medium recall of x{SPIKE:g} spikes {spike_recall:.2f} (>= 0.9: "
          f"{'yes' if spike_recall >= 0.9 else 'NO'}), of x0.2 drops {drop_recall:.2f} (>= 0.8: "
          f"{'yes' if drop_recall >= 0.8 else 'NO'})")


def thresholds_and_scores(series: list[np.ndarray], seeds: list[int]) -> str:
    """Why events are missed at medium: the spike and drop thresholds fitted on each
    injected series (the same injections as `evaluate`), and the robust scores its x3
    spikes and x0.2 drops got (medians; quartiles of the scores)."""
    from cascadeflow_cli.analytics.anomaly import AnomalyDetector, _scan
    from cascadeflow_cli.analytics.tails import thresholds

    uppers, lowers, spikes, drops = [], [], [], []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for values in series:
            injected, events = inject(values, rng)
            trace: list[tuple[int, float, float, float]] = []
            _scan(date(2020, 1, 6), injected, AnomalyDetector("medium"), trace)
            scores = np.full(len(values), np.nan)
            for t, s, _, _ in trace:
                scores[t] = s
            upper, lower = thresholds(scores[28:], RATES["medium"])
            uppers.append(upper)
            lowers.append(lower)
            for event in events:
                if event.kind != "shift" and np.isfinite(scores[event.day]):
                    (spikes if event.kind == "spike" else drops).append(float(scores[event.day]))

    def quartiles(values: list[float]) -> str:
        if not values:
            return "none"
        q1, q2, q3 = np.quantile(values, [0.25, 0.5, 0.75])
        return f"{q2:+.1f} ({q1:+.1f} to {q3:+.1f})"

    return (f"  medium thresholds fitted on the injected series, median: spikes +{np.median(uppers):.1f}, "
            f"drops -{np.median(lowers):.1f}; scores of x{SPIKE:g} spikes {quartiles(spikes)}, "
            f"of x0.2 drops {quartiles(drops)}")


def ceiling(series: list[np.ndarray], has_own_anomalies: bool, rate: float = RATES["medium"]) -> str:
    """How far a x3 spike or a x0.2 drop can be told from the set's ordinary days at all:
    each series' clean days' log deviations from our hindsight baseline (``_scan``'s
    trace), a threshold on each side passed by ``rate`` / 2 per 1,000 of them (the stated
    rate; per series when it has CEILING_DAYS judged days, else over the set pooled), and
    the share of ordinary days that a x3 spike (+log 3) or a x0.2 drop (-log 5) on them
    would carry past it: the recall a threshold on this baseline could reach while holding
    the rate (the conflict, where it is below the target). An estimate: the order
    statistics of a few hundred days are themselves noisy."""
    from cascadeflow_cli.analytics.anomaly import AnomalyDetector, _scan

    each = []
    for values in series:
        natural = own_anomalies(values) if has_own_anomalies else set()
        trace: list[tuple[int, float, float, float]] = []
        _scan(date(2020, 1, 6), values, AnomalyDetector("medium"), trace)
        each.append(np.array([score * scale for t, score, scale, _ in trace
                              if np.isfinite(score) and not any(abs(t - n) <= 1 for n in natural)]))
    groups = each if min(len(r) for r in each) >= CEILING_DAYS else [np.concatenate(each)]
    if sum(len(r) for r in groups) < 200:
        return "  x3 / x0.2 separable from ordinary days: too few judged days to tell"
    highs, lows, spikes, drops = [], [], [], []
    for r in groups:
        low, high = np.quantile(r, [rate / 2000, 1 - rate / 2000])
        highs.append(high)
        lows.append(low)
        spikes += (r + np.log(SPIKE) > high).tolist()
        drops += (r - np.log(5.0) < low).tolist()
    where = "per series" if len(groups) > 1 else "pooled"
    return (f"  separable at the stated medium rate ({where}, {len(spikes)} clean days): 99.85th pct of "
            f"log deviations median {np.median(highs):+.2f} (log 3 = +1.10), 0.15th {np.median(lows):+.2f} "
            f"(log 0.2 = -1.61); best recall on this baseline: x3 spikes {np.mean(spikes):.2f}, "
            f"x0.2 drops {np.mean(drops):.2f}")


def print_row(label: str, sensitivity: str, t: Tally) -> None:
    kinds = " ".join(f"{k} {f}/{e}" for k, (e, f) in sorted(t.by_kind.items()))
    print(f"  {label:<28} {sensitivity:<7} {t.events:>6} {t.found:>6} {t.detections:>10} "
          f"{t.precision:>9.2f} {t.recall:>7.2f}  {kinds}")


def scaled(values: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """Each series scaled so that its median day costs U($3, $30): the spend of a team for
    whom a $0.50 change is worth a look (on a $0.30-a-day user nearly every event would
    fall under the minimum change)."""
    rng = np.random.default_rng(seed)
    return [v * rng.uniform(3.0, 30.0) / float(np.median(v[v > 0])) for v in values]


BACKGROUND_STEP = 10007  # --backgrounds K moves every synthetic background's seed by K x this


def family_series(kind: str, draw: int = 0) -> list[np.ndarray]:
    """A synthetic family of forecast_backtest.py (clean: no events of its own), scaled;
    ``draw`` > 0: another fixed draw of its ten series."""
    return scaled([values for _, _, values in families(kind, n=10, seed=4100 + BACKGROUND_STEP * draw)],
                  97 + draw)


def adexchange_series() -> list[np.ndarray]:
    return scaled([values for _, _, values in read_series(ADEXCHANGE)], 96) if ADEXCHANGE.exists() else []


def synthetic_series(n: int, draw: int = 0) -> list[np.ndarray]:
    """Clean synthetic users (730 days each), scaled; ``draw`` > 0: another fixed draw."""
    users = synthetic_users(n, seed=2026 + BACKGROUND_STEP * draw, with_events=False)
    return scaled([user.values for user in users], 99 + draw)


def history_series(path: Path) -> list[np.ndarray]:
    """The sample history's users (``cost`` summed per UTC day, days without rows zero),
    scaled. Its own events (dave's dearer model, frank's spike) stay in: they are left
    out of the counts like the dev series' own anomalies."""
    by_user: dict[str, dict[date, float]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            day = date.fromisoformat(row["timestamp"][:10])
            days = by_user.setdefault(row["user"], {})
            days[day] = days.get(day, 0.0) + float(row["cost"])
    out = []
    for days in by_user.values():
        first = min(days)
        values = np.zeros((max(days) - first).days + 1)
        for day, cost in days.items():
            values[(day - first).days] = cost
        out.append(values)
    return scaled(out, 98)


SWEEP = (2.5, 2.75, 3.0, 3.25, 3.5, 4.0, 4.5)


def sweep(args: argparse.Namespace, seeds: list[int], many: list[int]) -> None:
    """Precision and recall of ours at each threshold, per set: is there a threshold at
    which both reach the target?"""
    sets = [("synthetic", synthetic_series(args.users, args.backgrounds), seeds, False),
            ("sample history", history_series(args.history), many, True)]
    if args.data.exists():
        sets.insert(0, ("dev", [read_dev(args.data)[1]], seeds, True))
    print("\nthreshold sweep, ours (kind must match): precision / recall")
    print(f"  {'threshold':>9}  " + "  ".join(f"{name:>15}" for name, *_ in sets) + f"  {'pooled':>15}")
    for threshold in SWEEP:
        pooled = Tally()
        cells = []
        for _, series, set_seeds, own in sets:
            t = evaluate(series, {"ours": ours("medium", threshold)}, set_seeds, own)[("ours", True)]
            pooled.add(t)
            cells.append(f"{t.precision:.2f} / {t.recall:.2f}")
        print(f"  {threshold:>9}  " + "  ".join(f"{c:>15}" for c in cells)
              + f"  {pooled.precision:.2f} / {pooled.recall:.2f}".rjust(17))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="series,date,value CSV")
    parser.add_argument("--users", type=int, default=10, help="synthetic users (730 days each)")
    parser.add_argument("--seed", type=int, default=7, help="first seed of the injections")
    parser.add_argument("--seeds", type=int, default=3,
                        help="injection seeds per series (the sample history: five times as many)")
    parser.add_argument("--history", type=Path, default=HISTORY, help="the sample history CSV")
    parser.add_argument("--backgrounds", type=int, default=0,
                        help="another fixed draw of the synthetic users' and families' series (0: the usual)")
    parser.add_argument("--sweep", action="store_true",
                        help="also: ours (kind must match) at robust-score thresholds 2.5 to 4.5")
    args = parser.parse_args(argv)
    seeds = list(range(args.seed, args.seed + args.seeds))
    named = f"injection seeds {seeds[0]}-{seeds[-1]}"
    drawn = f"; background draw {args.backgrounds}" if args.backgrounds else ""
    pooled: dict[tuple[str, bool], Tally] = {}
    if args.data.exists():
        report(f"dev series {args.data.name} ({named}; its own anomalies left out)",
               [read_dev(args.data)[1]], seeds, True, pooled)
    else:
        print(f"{args.data}: not found, dev series skipped", file=sys.stderr)
    report(f"synthetic spend, {args.users} users x 730 days, no events of their own, "
           f"median day $3-$30 ({named}{drawn})", synthetic_series(args.users, args.backgrounds), seeds,
           False, pooled)
    for kind in ("heavy tails", "trend", "intermittent", "no weekly"):
        report(f"synthetic family '{kind}', 10 x 730 days, no events of their own ({named}{drawn})",
               family_series(kind, args.backgrounds), seeds, False, pooled)
    many = list(range(args.seed, args.seed + 5 * args.seeds))
    ads = adexchange_series()
    if ads:
        report(f"ad-exchange, 6 x 69 days, median day $3-$30 (injection seeds {many[0]}-{many[-1]}; "
               "their own anomalies left out)", ads, many, True, pooled)
    report(f"sample history {args.history.name}, 6 users x 120 days, median day $3-$30 (injection "
           f"seeds {many[0]}-{many[-1]}; its own events left out)", history_series(args.history), many,
           True, pooled)
    if args.sweep:
        sweep(args, seeds, many)
    print("\nall three pooled")
    print(f"  {'detector':<28} {'sens.':<7} {'events':>6} {'found':>6} {'detections':>10} "
          f"{'precision':>9} {'recall':>7}  recall by kind")
    for sensitivity in SENSITIVITIES:
        print_row("ours (kind must match)", sensitivity, pooled[(f"ours {sensitivity}", True)])
        print_row("seed z-score (date only)", sensitivity, pooled[(f"seed {sensitivity}", False)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
