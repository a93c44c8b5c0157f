"""The expected day and the noise scale that anomaly.py scores each day against: a level
and a weekday profile from the days around it (medians, in log spend), and the spread of
the out-of-sample residuals (MAD, or a tail quantile when the tails are heavier than a
normal's). Pure functions over numpy arrays; split from anomaly.py, which composes them."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

SEASON = 7
LEVEL_DAYS = 14  # the level: the last two weeks (shifts) or two weeks either side (days)
MIN_PROFILE_DAYS = 14  # days of history before a weekday profile is used
MIN_SCALE = 0.1  # log units: below ~10% day-to-day noise, treat the noise as 10%
MIN_RESIDUALS = 28  # out-of-sample residuals needed before they set the scale
TAIL_QUANTILE = 0.9  # heavy tails: this quantile of |deviation| ...
TAIL_Z = 1.6449  # ... over the normal's (so the scale is a normal standard deviation)
TAIL_WEIGHT = 0.85  # ... counts once it passes the MAD by a sixth (normal noise: by chance)
RECENT_RESIDUALS = 28  # the last four weeks of them: when their MAD is VOLATILE times the
VOLATILE = 1.5  # longer one, the noise has grown (a busy season) and they set the scale
IN_SAMPLE_WIDEN = 1.4  # in-sample MADs of a fitted window understate the noise about this much


@dataclass(frozen=True)
class Baseline:
    level: float
    profile: np.ndarray  # 7 weekday effects, indexed by date.weekday()
    scale: float

    def expected_z(self, weekday: int) -> float:
        return self.level + float(self.profile[weekday])


def log_gain(expected_z: np.ndarray, offset: float) -> np.ndarray:
    """How much a relative change in spend moves ``log(y + offset)`` around the expected
    day: 1 on busy days, less on quiet ones, where the offset dominates. Scores divide by
    it, so that the noise scale (kept in log-spend units) fits busy weekdays and quiet
    weekends alike; floored at 1/3 so that near-empty days do not score wildly."""
    import numpy as np

    return np.clip(1.0 - offset / np.exp(expected_z), 1.0 / 3.0, 1.0)


def noise_scale(residuals: list[float], in_sample: float, window: int) -> float:
    """The noise scale a new day is judged by: the spread (``residual_spread``) of the recent
    out-of-sample residuals (each day against the baseline it was judged by), which
    carries both the day-to-day noise and the drift of the level since the window, or
    of the last RECENT_RESIDUALS alone when theirs is VOLATILE times larger; until there
    are enough of them, the window's own MAD, widened for being fitted to the same days."""
    import numpy as np

    if len(residuals) < MIN_RESIDUALS:
        return max(in_sample * IN_SAMPLE_WIDEN, MIN_SCALE)
    recent = np.asarray(residuals[-window:])
    spread = residual_spread(recent)
    latest = np.asarray(residuals[-RECENT_RESIDUALS:])
    lately = residual_spread(latest)
    if lately > VOLATILE * spread:  # the noise itself has grown lately (a busy season)
        spread = lately
    return max(spread, MIN_SCALE)


def residual_spread(residuals: np.ndarray) -> float:
    """The noise scale of residuals, as a normal standard deviation: the MAD (x 1.4826),
    or, when the tails are heavier than a normal's, the TAIL_QUANTILE of the absolute
    deviations over the normal's (so a series with heavy tails does not page on them)."""
    import numpy as np

    deviations = sorted(np.abs(residuals - fast_median(residuals)).tolist())
    mad = 1.4826 * statistics.median(deviations)
    tail = sorted_quantile(deviations, TAIL_QUANTILE) / TAIL_Z
    return max(mad, TAIL_WEIGHT * tail)


def window_baseline(z: np.ndarray, weekdays: np.ndarray, previous_profile: np.ndarray, *,
              learn_profile: bool = True) -> Baseline:
    """Level, weekday profile and MAD scale from the days before the one judged: the
    profile from the whole window (per weekday, the median departure from the window's
    median), the level from the last LEVEL_DAYS of it once the profile is taken out, so
    that growth and undetected drifts are followed within days rather than weeks. Without
    ``learn_profile`` (a window with too few days of spend, e.g. a holiday) the previous
    profile is kept: empty days have no weekly pattern to learn."""
    import numpy as np

    profile = previous_profile
    if learn_profile and len(z) >= MIN_PROFILE_DAYS:
        profile = weekday_profile(z, weekdays)
    flat = z - profile[weekdays]
    level = fast_median(flat[-LEVEL_DAYS:])
    scale = 1.4826 * fast_median(np.abs(flat - fast_median(flat)))
    return Baseline(level, profile, max(scale, MIN_SCALE))


def fast_median(values: np.ndarray) -> float:
    """np.median of a short 1-D array without its per-call overhead (a scan takes tens of
    thousands of medians of a few dozen days each; this is several times faster)."""
    return statistics.median(values.tolist())


def sorted_quantile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted values, interpolated linearly (numpy's default)."""
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def weekday_profile(z: np.ndarray, weekdays: np.ndarray) -> np.ndarray:
    """Per weekday, the median departure of its days from the median of all of them,
    centred (a weekday seen fewer than twice: no departure)."""
    import numpy as np

    values = z.tolist()
    centre = statistics.median(values)
    days: list[list[float]] = [[] for _ in range(SEASON)]
    for value, weekday in zip(values, weekdays.tolist(), strict=True):
        days[weekday].append(value)
    profile = np.array([statistics.median(mine) - centre if len(mine) >= 2 else 0.0 for mine in days])
    return profile - statistics.median(profile.tolist())
