"""The words of `forecast`'s notes on histories its models cannot read as they are: a
single burst, a one-off runaway day. Pure: no clock, no printing."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from cascadeflow_cli.words import count_of

if TYPE_CHECKING:
    import numpy as np

    from cascadeflow_cli.analytics.forecast import DailySeries


def burst_note(series: DailySeries, window: np.ndarray, spent: np.ndarray) -> str:
    """What a forecast of a single burst is: "all the spend is $250.00 on 1 day
    (2026-09-09): a single burst, ..."."""
    from cascadeflow_cli.money import format_dollars

    first = series.as_of - timedelta(days=len(window) - int(spent[0]))
    last = series.as_of - timedelta(days=len(window) - int(spent[-1]))
    when = first.isoformat() if first == last else f"{first.isoformat()} to {last.isoformat()}"
    return (f"all the spend is {format_dollars(float(window.sum()))} on {count_of(len(spent), 'day')} "
            f"({when}): a single burst, no level to compare methods on; the forecast is the recent "
            "days' mean, and its range whether the burst repeats or not")


def one_off_note(series: DailySeries, left_out: tuple[int, ...], judged: int) -> str:
    """Which runaway days the forecast leaves out (`selection._one_off`), and why:
    ``left_out`` are positions in the ``judged`` days that end the day before as_of."""
    from cascadeflow_cli.analytics.candidates import RUNAWAY
    from cascadeflow_cli.money import format_dollars

    days = [series.as_of - timedelta(days=judged - i) for i in left_out]
    spent = " and ".join(f"{format_dollars(float(series.values[(d - series.start).days]))} on {d.isoformat()}"
                         for d in days)
    return (f"{spent} left out of the forecast: over {RUNAWAY:g} times a usual day and rarer than "
            "one in each of the history's windows of the horizon compared, so not forecast to "
            "come back")
