"""Spend anomalies: days that cost far more or less than they should, and lasting shifts.

A report over history, so a day is judged with hindsight: against the days on both sides
of it (the day itself left out of its own baseline), on a log scale ``z = log(y + c)``
(``c``: 5% of the typical non-zero day around it), where "twice as much" is the same
distance for $2 and $200 users. Two passes:

1. **Shifts**, walking forward from four weeks in. Each day starts a look-ahead of
   ``shift_days`` (8) days judged against the baseline of the eight weeks before it
   (weekday profile: per weekday, the median departure from the window's median; level:
   the median of its last two weeks with the profile taken out; scale: the spread of the
   earlier days' out-of-sample residuals). When all of them lie on the same side, the
   first day and their median at least half the threshold away (the median also past
   the series' own earlier runs at half the rate, `tails.shift_needs`; before there are
   eight weeks of them, past the window's own eight-day stretches by a predictive t, at
   most SHIFT_EARLY_MOST of the threshold), and the split of
   the look-ahead that fits "old level, then a new one" best starts on its first day: a
   level shift (a second one the same way within two weeks is merged into it) --
   unless the first day also stands out from the new level by the threshold (then it is
   a spike or drop, and the shift, if any, starts after it). The baseline restarts there:
   the new level is normal from then on.
2. **Spikes and drops**, every day within its regime (the days between shifts): expected
   ``z`` = the median of the profile-free days within two weeks either side + the
   weekday profile of the eight weeks either side. Its residual over the noise scale is
   its robust score. The scale is the spread (MAD, or a heavy-tail quantile, see
   ``residual_spread``) of the other days' residuals -- each computed the same way, so it carries
   the baseline's own error -- over half a year either side; within six weeks either
   side instead when theirs is VOLATILE times larger (widened by its own uncertainty,
   1/sqrt(n)), so a busy, noisy season is judged by its own noise. Not the larger of the
   two always: on steady noise the six-week spread of ~84 residuals wanders ~15%, and
   the maximum inflated and jittered every score (x3 spikes on the synthetic users
   scored a median 3.2 against a threshold of 3.2). Quiet weekdays (under half the
   typical day: few requests, so noisier) are judged by the other quiet days'
   residuals, busy ones by the busy days'. Residuals are divided per day by how much the
   offset damps it (quiet days more).

A day is flagged when its score passes the sensitivity's threshold *and* the money
involved passes a minimum absolute change (so cents never page anyone); days are judged
once there are four weeks of history -- but a history shorter than eight weeks (a new
user's) is judged whole from 14 days on, each day against all the others, except a day
whose weekday the others hold once at most (no weekly profile to judge it by). A flagged
day in the last week whose later days all lie on the same side may be the start of a
shift: too recent to tell, and it says so.

Each sensitivity is a false-alarm rate (low 1, medium 3, high 10 per 1,000 ordinary
days): the spike and drop thresholds are fitted to the series' own score distribution
(on too few scores for that, under about 108 days: the quantile of a t whose degrees of
freedom are what the days' noise scales were read from, `tails.prior_threshold`),
each side with its own heavy tail, read from its ordinary days (the scores that stand out
set aside first, so that an event every few weeks is not taken for the tail: `tails`).
A side whose typical score is past the normal threshold on days weeks apart ($5 every
three weeks, $0 between) is the series' regular pattern, judged among its own days
(`tails._recurring`). Severity comes from how far the score passed its threshold and the money at stake
(`anomaly_words.severity_of`).

Pure numpy; no database or printing here.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.analytics.anomaly_words import describe, severity_of
from cascadeflow_cli.analytics.day_baseline import (
    LEVEL_DAYS,
    MIN_PROFILE_DAYS,
    MIN_RESIDUALS,
    MIN_SCALE,
    SEASON,
    VOLATILE,
    fast_median,
    log_gain,
    noise_scale,
    residual_spread,
    weekday_profile,
    window_baseline,
)
from cascadeflow_cli.analytics.tails import MIN_SHIFT_NULL, RATES, shift_needs, thresholds

if TYPE_CHECKING:
    import numpy as np

__all__ = ["HISTORY_DAYS", "THRESHOLDS", "Anomaly", "AnomalyDetector", "severity_of"]

# each sensitivity is a false-alarm rate (per 1,000 ordinary days, `tails.RATES`): spikes
# and drops get thresholds fitted to each series' own score distribution; shifts (eight
# days on one side) half these robust scores, or what the series' own runs need for
# SHIFT_SHARE of the rate where they wander further (`_shift_need`)
THRESHOLDS = {"low": 5.0, "medium": 3.5, "high": 3.0}
WINDOW_DAYS = 56  # the weekday profile: eight weeks before (shifts) or either side (days)
MIN_BASELINE_DAYS = 28  # days of history before a day is judged at all (four of each weekday) ...
NEW_USER_DAYS = 2 * MIN_BASELINE_DAYS  # ... but a history shorter than this is judged whole
MIN_NEW_DAYS = 14  # (with hindsight, every day against the others) once it has this many days
SPREAD_EFFICIENCY = 0.37  # a MAD of n residuals knows the noise as well as 0.37 n would (normal data)
SHIFT_DAYS = 8  # days from the one under test that must stay on one side: a shift
MERGE_DAYS = 14  # a shift the same way this soon after another is that one still settling
SHIFT_FRACTION = 0.5  # their median (and the first) must score this share of the threshold
SHIFT_LOCATE = 3  # a shift may start up to this many days into its look-ahead (then: later)
RESIDUAL_DAYS = 112  # the most recent of them used (shifts)
SCALE_DAYS = 42  # a day's noise: the other days' residuals this close to it ...
FLOOR_DAYS = 182  # ... when VOLATILE times those this close; else these (steady noise)
QUIET = math.log(0.5)  # a weekday under half the typical day is a quiet one ...
QUIET_WIDEN = 2  # ... judged by the other quiet days' residuals this much further afield
MIN_QUIET = 12  # ... once there are this many of them (else by all the days')
HISTORY_DAYS = FLOOR_DAYS  # context a caller should load before the first day reported
SHIFT_SHARE = 0.5  # shifts may page this share of the rate on top of spikes and drops (`_shift_need`)
SHIFT_NULL_DAYS = 364  # the look-ahead medians of the last year are the shifts' null
SHIFT_EARLY_MOST = 0.75  # before that null exists, a shift needs at most this share of the threshold
DEFAULT_MIN_CHANGE = 0.5  # USD
OFFSET = 0.05  # log(y + OFFSET x the typical day): zero days stay finite


@dataclass(frozen=True)
class Anomaly:
    """One unusual day (or the first day of a lasting shift). Amounts in USD."""

    date: date
    user: str | None
    expected: float
    actual: float
    score: float  # robust z-score: residual / MAD-scale (signed)
    severity: str  # "low" | "medium" | "high"
    kind: str  # "spike" | "drop" | "shift"
    description: str
    model: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The `cascade anomalies --json` row of CLI.md (plus ``model``)."""
        return {
            "date": self.date.isoformat(),
            "user": self.user,
            "expected": _finite(self.expected),
            "actual": _finite(self.actual),
            "score": _finite(self.score, 2),
            "severity": self.severity,
            "kind": self.kind,
            "description": self.description,
            "model": self.model,
        }


def _finite(value: float, digits: int = 6) -> float:
    return round(float(value), digits) if math.isfinite(value) else 0.0


class AnomalyDetector:
    """Find spikes, drops and level shifts in a daily spend series.

    ``sensitivity`` is a false-alarm rate: low 1, medium 3, high 10 per 1,000 ordinary
    days, met on each series by thresholds fitted to its own scores (`tails`). Setting
    ``fixed`` (an attribute) instead fixes one robust-score threshold for both sides (a benchmark's
    sweep). ``min_change`` is the smallest change in USD worth reporting."""

    def __init__(self, sensitivity: str = "medium", *, min_change: float = DEFAULT_MIN_CHANGE,
                 window: int = WINDOW_DAYS, shift_days: int = SHIFT_DAYS) -> None:
        if sensitivity not in THRESHOLDS:
            raise ValueError(f"sensitivity must be one of {', '.join(THRESHOLDS)}")
        self.sensitivity = sensitivity
        self.rate = RATES[sensitivity]
        self.threshold = THRESHOLDS[sensitivity]
        self.fixed: float | None = None  # a fixed score threshold instead of the fitted ones
        self.min_change = max(0.0, float(min_change))
        self.window = max(window, MIN_PROFILE_DAYS)
        self.shift_days = max(2, shift_days)

    def detect(self, history: Iterable[tuple[date, float]], *, user: str | None = None,
               model: str | None = None, since: date | None = None,
               until: date | None = None) -> list[Anomaly]:
        """Anomalies among the days from ``since`` to ``until`` (inclusive; default: all).
        ``history`` is ``(date, usd)`` rows; missing days are zero, several rows a day are
        summed. Days before ``since`` still serve as baseline."""
        start, y = _daily(history, until)
        if len(y) < MIN_NEW_DAYS or not (y > 0).any():
            return []
        found = _scan(start, y, self)
        typical = fast_median(y[y > 0])
        return [describe(f, user, model, typical, self.threshold) for f in found
                if (since is None or f.day >= since) and (until is None or f.day <= until)]

    def detect_anomalies(self, history: Iterable[tuple[date, float]],
                         user_id: str | None = None) -> list[Anomaly]:
        """The seed's name for ``detect``."""
        return self.detect(history, user=user_id)


# --- the scan -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Finding:
    day: date
    index: int
    kind: str
    score: float
    expected: float  # USD
    actual: float  # USD
    run: int = 1  # days the shift has held when it was confirmed
    ongoing: bool = False  # too close to the end of the data to tell a shift
    limit: float = 0.0  # the threshold its score passed (0: the shift rule's)


def _daily(history: Iterable[tuple[date, float]], until: date | None) -> tuple[date, np.ndarray]:
    import numpy as np

    by_day: dict[date, float] = {}
    for day, amount in history:
        value = float(amount)
        if math.isfinite(value) and (until is None or day <= until):
            by_day[day] = by_day.get(day, 0.0) + max(value, 0.0)
    if not by_day:
        return date.min, np.zeros(0)
    start = min(by_day)
    y = np.zeros((max(by_day) - start).days + 1)
    for day, value in by_day.items():
        y[(day - start).days] = value
    return start, y


def _scan(start: date, y: np.ndarray, detector: AnomalyDetector,
          trace: list[tuple[int, float, float, float]] | None = None) -> list[_Finding]:
    """Shifts first (walking forward), then every day against both sides of it within its
    regime. ``trace`` (if given) collects ``(day index, score, scale, expected USD)`` of
    each day judged for a spike or drop."""
    shifts, unsaid = _shifts(start, y, detector)
    days = _days(start, y, detector, sorted({f.index for f in shifts} | set(unsaid)), trace)
    return sorted(shifts + days, key=lambda f: f.index)


def _shifts(start: date, y: np.ndarray, detector: AnomalyDetector) -> tuple[list[_Finding], list[int]]:
    """Pass 1: walk the days in order; each one that starts a lasting change against the
    baseline of the days before it is a shift, and the baseline restarts there. Also the
    first days of changes as lasting but of less than the minimum change: not reported,
    and the walk goes on as if they were not there, but pass 2 judges the days either
    side of one apart (else a $0.08-a-day user's last week of nothing, eight drops of
    cents, widened the noise her 20x spike three weeks earlier was judged by: unseen at
    medium)."""
    import numpy as np

    typical = fast_median(y[y > 0])
    weekdays = (start.weekday() + np.arange(len(y))) % SEASON
    findings: list[_Finding] = []
    unsaid: list[int] = []  # first days of lasting changes under the minimum change
    residuals: list[float] = []  # each day against the baseline before it (out of sample)
    regime = 0  # first day of the current level (moves on after a shift)
    profile = np.zeros(SEASON)
    runs: list[tuple[int, float]] = []  # (day, median score of its look-ahead): the shift null
    t = MIN_BASELINE_DAYS
    while t + detector.shift_days <= len(y):
        first = max(regime, t - detector.window)
        if t - first < detector.shift_days:
            t += 1
            continue
        # the log offset follows the window, so a $3-a-day stretch of a once-$30 user is
        # judged on its own scale
        spent = y[first:t][y[first:t] > 0]
        offset = OFFSET * (fast_median(spent) if len(spent) else typical)
        ahead = slice(t, t + detector.shift_days + SHIFT_LOCATE)
        base = window_baseline(np.log(y[first:t] + offset), weekdays[first:t], profile,
                         learn_profile=len(spent) >= MIN_PROFILE_DAYS)
        profile = base.profile
        window_gain = log_gain(base.level + base.profile[weekdays[first:t]], offset)
        scale = noise_scale(residuals, base.scale / fast_median(window_gain), RESIDUAL_DAYS)
        expected_z = base.level + base.profile[weekdays[ahead]]
        z_ahead = np.log(y[ahead] + offset)
        scores = (z_ahead - expected_z) / (scale * log_gain(expected_z, offset))
        run_median = fast_median(scores[:detector.shift_days]) if len(scores) >= detector.shift_days else 0.0
        before = t - detector.shift_days - SHIFT_LOCATE
        early = None  # runs are in day order: only the last few can have ended too late
        if len(runs) - sum(1 for day, _ in runs[-(detector.shift_days + SHIFT_LOCATE):] if day >= before) \
                < MIN_SHIFT_NULL:
            early = _window_runs(np.log(y[first:t] + offset) - profile[weekdays[first:t]], scale,
                                 detector.shift_days)
        found = _shift(scores, expected_z, z_ahead, offset, detector,
                       _shift_need(runs, before, detector, early))
        shift, moved = found if found is not None else (None, 0.0)
        if shift is not None and moved < detector.min_change:
            if not unsaid or t - unsaid[-1] > detector.shift_days + SHIFT_LOCATE:
                unsaid.append(t)  # the same change, a day on, is not another
            shift = None
        if shift is not None:
            run = detector.shift_days
            step = fast_median(scores[:run])
            expected = max(math.exp(expected_z[0]) - offset, 0.0)
            previous = findings[-1] if findings else None
            if previous is not None and t - previous.index <= MERGE_DAYS and step * previous.score > 0:
                # the same change still settling: one shift, now to the level reached
                findings[-1] = replace(previous, actual=shift, run=t + run - previous.index)
            else:
                findings.append(_Finding(start + timedelta(days=t), t, "shift", step, expected, shift,
                                         run=run))
            # the look-aheads that overlapped this shift's days measured the shift, not the null
            runs = [(day, m) for day, m in runs if day <= t - run - SHIFT_LOCATE]
            regime = t
            t += run
            continue
        runs.append((t, run_median))
        if abs(scores[0]) < detector.threshold:  # flagged days do not widen the noise estimate
            residuals.append(float(scores[0]) * scale)  # in log-spend units, as the scale
        t += 1
    return findings, unsaid


def _shift_need(runs: list[tuple[int, float]], before: int, detector: AnomalyDetector,
                early: list[float] | None = None) -> tuple[float, float]:
    """The median score a look-ahead must reach to be a shift, up and down
    (`tails.shift_needs`), from the look-aheads that ended before ``before`` (out of
    sample), the last SHIFT_NULL_DAYS of them; while there are too few of those, also
    from ``early`` (`_window_runs`: the window's own eight-day stretches)."""
    past = [m for day, m in runs[-(SHIFT_NULL_DAYS + SHIFT_LOCATE + detector.shift_days):] if day < before]
    return shift_needs(past, detector.threshold * SHIFT_FRACTION, SHIFT_SHARE * detector.rate,
                       early=early, run=detector.shift_days, most=detector.threshold * SHIFT_EARLY_MOST)


def _window_runs(flat: np.ndarray, scale: float, run: int) -> list[float]:
    """The shift statistic on the baseline window's own days: each ``run``-day stretch's
    median against the level of the LEVEL_DAYS before it (the profile taken out), over the
    noise scale -- what a look-ahead's median does on this series when nothing happens."""
    values = flat.tolist()
    return [(statistics.median(values[s:s + run]) - statistics.median(values[s - LEVEL_DAYS:s])) / scale
            for s in range(LEVEL_DAYS, len(values) - run + 1)]


def _shift(scores: np.ndarray, expected_z: np.ndarray, z: np.ndarray, offset: float,
           detector: AnomalyDetector, needs: tuple[float, float] | None = None) -> tuple[float, float] | None:
    """The new typical day (USD, for the first day's weekday) and the median change a day
    (USD, absolute) if the look-ahead from the day under test starts a level shift: its
    first ``shift_days`` all on one side of the baseline, the first and their median at
    least the shift threshold away; the split of the look-ahead that fits "old level,
    then a new one" best (least absolute deviations) starts on the first day (a shift
    starting a day or two later is found then, not early); and the first day not a spike
    or drop on top of the new level. Else None. (Whether the change is worth reporting
    is the caller's.)"""
    import numpy as np

    run = detector.shift_days
    if len(scores) < run:
        return None
    need = detector.threshold * SHIFT_FRACTION
    sign = 1.0 if scores[0] > 0 else -1.0
    median_need = need if needs is None else needs[0 if sign > 0 else 1]
    if (sign * scores[0] < need or np.any(scores[:run] * sign <= 0)
            or sign * fast_median(scores[:run]) < median_need):
        return None
    costs = [float(np.sum(np.abs(scores[:k])) + np.sum(np.abs(scores[k:] - fast_median(scores[k:]))))
             for k in range(min(SHIFT_LOCATE, len(scores) - run) + 1)]
    if int(np.argmin(costs)) > 0:
        return None
    if sign * (scores[0] - fast_median(scores[1:run])) >= detector.threshold:
        return None  # the first day stands out from the new level too: a spike or drop
    old = np.exp(expected_z[:run]) - offset
    new = np.exp(z[:run]) - offset
    step = fast_median(z[:run] - expected_z[:run])
    # the first weekday's typical new day, kept within the new days seen: the profile moved
    # by the step is not zero where spend stopped (a drop to nothing read "$0.021/day")
    level = min(max(math.exp(expected_z[0] + step) - offset, float(np.min(new))), float(np.max(new)))
    return max(level, 0.0), abs(fast_median(new - old))


def _days(start: date, y: np.ndarray, detector: AnomalyDetector, shifts: list[int],
          trace: list[tuple[int, float, float, float]] | None) -> list[_Finding]:
    """Pass 2: every day against the days either side of it in its regime (the days from
    one shift to the next), the day itself left out; then each residual over the spread
    of the others around it."""
    import numpy as np

    n = len(y)
    # a new user's first weeks are most of what there is: a short history is judged whole,
    # each day against all the others (hindsight), by as few days as it has
    first = MIN_BASELINE_DAYS if n >= NEW_USER_DAYS else 0
    least_around, least_residuals = (MIN_PROFILE_DAYS, MIN_RESIDUALS) if first else (n - 1, n - 1)
    typical = fast_median(y[y > 0])
    weekdays = (start.weekday() + np.arange(n)) % SEASON
    residual = np.full(n, np.nan)  # log units, divided by the offset's damping
    expected = np.zeros(n)  # USD
    quiet = np.zeros(n, dtype=bool)  # a quiet weekday (a weekend, say)
    profile = np.zeros(SEASON)
    bounds = [0, *shifts, n]
    for lo, hi in pairwise(bounds):
        for t in range(lo + (lo > 0), hi):  # a shift's first day is the shift
            around = np.r_[max(lo, t - detector.window):t, t + 1:min(hi, t + detector.window + 1)]
            if len(around) < min(MIN_PROFILE_DAYS, least_around):
                continue
            if not first and np.sum(weekdays[around] == weekdays[t]) < 2:
                continue  # its weekday seen once more: no profile (a new user's Sundays paged as drops)
            spent = y[around][y[around] > 0]
            offset = OFFSET * (fast_median(spent) if len(spent) else typical)
            z = np.log(y[around] + offset)
            if len(spent) >= MIN_PROFILE_DAYS:  # else keep the last one: empty days have none
                profile = weekday_profile(z, weekdays[around])
            near = np.abs(around - t) <= LEVEL_DAYS
            expected_z = fast_median((z - profile[weekdays[around]])[near]) + profile[weekdays[t]]
            gain = float(log_gain(np.array([expected_z]), offset)[0])
            residual[t] = (math.log(y[t] + offset) - expected_z) / gain
            expected[t] = max(math.exp(expected_z) - offset, 0.0)
            quiet[t] = profile[weekdays[t]] < QUIET
    judged = np.nonzero(np.isfinite(residual))[0]
    scores = np.full(n, np.nan)
    counts: list[int] = []  # residuals behind each judged day's scale
    # the first weeks are scored too, but only to show a regular pattern (`tails._recurring`:
    # on 60 days, $5 every three weeks has one $5 day after them, judged on its own)
    for t in judged:
        distance = np.abs(judged - t)
        others = judged[(distance <= SCALE_DAYS) & (distance > 0)]
        if len(others) < min(MIN_RESIDUALS, least_residuals):
            continue
        # quiet weekdays (few requests) are noisier than busy ones: each is judged by its kind
        same = (quiet[judged] == quiet[t]) & (distance > 0)
        alike = judged[same & (distance <= SCALE_DAYS * (QUIET_WIDEN if quiet[t] else 1))]
        if not quiet[t] or len(alike) >= MIN_QUIET:
            others = alike
        floor = judged[same & (distance <= FLOOR_DAYS)]
        if len(floor) < min(MIN_RESIDUALS, least_residuals):
            floor = judged[(distance <= FLOOR_DAYS) & (distance > 0)]
        # the spread of n residuals is itself uncertain, by about 1/sqrt(n) of it: judge by
        # its upper side, so that a fresh or short history does not page on chance
        local = residual_spread(residual[others]) * (1 + 1 / math.sqrt(len(others)))
        steady = residual_spread(residual[floor])
        # a noisier season is judged by its own noise; the same noise as all year, by the
        # steadier half-year estimate
        scale = max(local if local >= VOLATILE * steady else steady, MIN_SCALE)
        scores[t] = residual[t] / scale
        if t >= first:
            counts.append(len(others) if local >= VOLATILE * steady else len(floor))
        if trace is not None and t >= first:
            trace.append((int(t), float(scores[t]), scale, float(expected[t])))
    if detector.fixed is not None:
        upper = lower = detector.fixed
    else:
        # a scale read from few residuals is itself uncertain: the thresholds' prior is the
        # t the scores then follow (a short history paged 2-3 times its rate on the normal's)
        df = SPREAD_EFFICIENCY * statistics.median(counts) if counts else math.inf
        upper, lower = thresholds(scores[first:], detector.rate, pattern=scores, df=df)
    findings: list[_Finding] = []
    clean = np.nan_to_num(scores[first:])
    for t in np.nonzero((clean >= upper) | (clean <= -lower))[0] + first:
        score = float(scores[t])
        if abs(y[t] - expected[t]) < detector.min_change:
            continue
        later = residual[t + 1:]
        ongoing = 0 < n - 1 - t < detector.shift_days and bool(np.all(later * score > 0))
        findings.append(_Finding(start + timedelta(days=int(t)), int(t), "spike" if score > 0 else "drop",
                                 score, float(expected[t]), float(y[t]), ongoing=ongoing,
                                 limit=upper if score > 0 else lower))
    return findings
