"""A history whose last days jumped far above every day before them (or that is one day
long): a new level or a one-off, and nothing in the history tells which. The forecast is
a mixture: the new level goes on t more days with chance a/(a+t), a its days so far (the
Lindy/Gott rule, as the quiet's in `quiet`), else the level before it. Pure numpy."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

LONGEST = 13  # a jump of 14 days and more is the series' level: the models judge it


def jumped_days(y: np.ndarray, horizon: int) -> int:
    """The days of the run ending yesterday that each sit over RUNAWAY times the median
    day with spend before it, when the run's excess is worth over RUNAWAY usual horizon
    windows (the mean day before it x ``horizon``); else 0. The bench's heaviest day at
    any cutoff is worth 5.1 windows; a cent a day then $50 yesterday, 166."""
    import numpy as np

    from cascadeflow_cli.analytics.candidates import RUNAWAY

    for a in range(min(LONGEST, len(y) - 1), 0, -1):
        rest = y[:-a]
        spent = rest[rest > 0]
        if len(spent) == 0:
            continue
        day = float(np.median(spent))
        run = y[-a:]
        usual = float(np.mean(rest)) * horizon
        if np.all(run > RUNAWAY * day) and float(run.sum()) - a * day > RUNAWAY * usual:
            return a
    return 0


def lindy_mix(new: np.ndarray, old: np.ndarray, age: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paths of the ``new`` level (``age`` days old) until it ends, ``old``'s after: it
    goes on past day k with chance age/(age + k + 1/2) (each day at its middle, so one
    day of history goes on with chance 2/3 tomorrow, not a coin's toss that left the
    median at the edge between $0 and a day's spend). Also the chance itself, per day."""
    import numpy as np

    n, days = new.shape
    if old.shape[0] != n:
        old = old[rng.integers(old.shape[0], size=n)]
    lasts = age / rng.uniform(1e-12, 1.0, size=(n, 1)) - age
    t = np.arange(days) + 0.5
    return np.where(lasts > t[None, :], new, old), age / (age + t)
