"""A regular payment: the same amount at the same interval and nothing between ($5 every
21 days, a subscription). The forecast's models know a weekly season, not a 21-day
cycle: on such a history its 28-day mean and last week held one payment or two, and it
forecast $14.50 for a month that holds one ($5) or two ($10). Here a horizon holds the
payments that fall in it at the history's interval, its phase unknown (a payment a day
late moves one out of the horizon), so the totals are whole payments and their mean the
amount x days / interval. Pure numpy (imported inside the functions)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

MIN_PAYMENTS = 3  # days with spend needed to call them a schedule (two gaps)
MIN_GAP = 2  # days between payments at least (a daily spender keeps no schedule)
GAP_SLACK = 1  # days any gap may differ from the median gap
AMOUNT_SLACK = 0.1  # share of the median amount any amount may differ from it by


@dataclass(frozen=True)
class Schedule:
    """Payments of about ``amount`` every ``every`` days (``amounts``: each one seen)."""

    amount: float
    every: int
    amounts: tuple[float, ...]

    def counts(self, days: int) -> tuple[int, int]:
        """The fewest and most payments ``days`` days can hold."""
        return days // self.every, math.ceil(days / self.every)


def schedule(y: np.ndarray) -> Schedule | None:
    """The regular payment the daily series ``y`` is, else None: MIN_PAYMENTS days with
    spend or more, nothing on the days between, every gap within GAP_SLACK days of their
    median (at least MIN_GAP) and every amount within AMOUNT_SLACK of theirs; the days
    since the last one no more than a gap (longer: the quiet rule of `forecast` judges)."""
    import numpy as np

    days = np.nonzero(y > 0)[0]
    if len(days) < MIN_PAYMENTS:
        return None
    gaps = np.diff(days)
    every = int(np.median(gaps))
    amounts = y[days]
    amount = float(np.median(amounts))
    if (every < MIN_GAP or np.any(np.abs(gaps - every) > GAP_SLACK)
            or np.any(np.abs(amounts - amount) > AMOUNT_SLACK * amount)
            or len(y) - int(days[-1]) > every + GAP_SLACK):
        return None
    return Schedule(amount, every, tuple(float(a) for a in amounts))


def schedule_paths(plan: Schedule, days: int, n_paths: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sample paths (n_paths, days) of the payments: the first on a day drawn uniformly
    within the interval, then every ``every`` days, each amount drawn from those seen;
    and the expected spend of each day (the mean amount / interval)."""
    import numpy as np

    first = rng.integers(0, plan.every, size=(n_paths, 1))
    k = np.arange(days)[None, :]
    due = (k >= first) & ((k - first) % plan.every == 0)
    paths = np.where(due, rng.choice(np.array(plan.amounts), size=(n_paths, days)), 0.0)
    return paths, np.full(days, float(np.mean(plan.amounts)) / plan.every)
