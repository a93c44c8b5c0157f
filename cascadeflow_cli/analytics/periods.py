"""Budget periods as calendar days, from the ledger's own window rules
(`cascadeflow_cli/windows.py`: calendar day, ISO week from Monday, calendar month, total)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

from cascadeflow_cli.analytics.types import BudgetPeriod
from cascadeflow_cli.windows import window

# the order a budget outlook prefers: the longest window with a limit says most about the
# month, and a daily limit is judged over its own day
PREFERENCE = ("monthly", "weekly", "daily")


def window_period(name: str, day: date) -> tuple[date, date | None]:
    """The calendar days of the budget window ``name`` containing ``day`` (end None for
    total). Dates are local already, so the window is computed in UTC at noon."""
    w = window(name, datetime(day.year, day.month, day.day, 12, tzinfo=UTC), "UTC")
    if w.end is None:
        return date.min, None
    return w.start.date(), (w.end - timedelta(days=1)).date()


def month_bounds(day: date) -> tuple[date, date]:
    start, end = window_period("monthly", day)
    assert end is not None
    return start, end


def window_budget(name: str, limit: float, day: date) -> BudgetPeriod:
    """One budget window's limit over its own period containing ``day``; a total limit
    runs over all spend to the end of the month."""
    start, end = window_period(name, day)
    return BudgetPeriod(name, float(limit), start, end if end is not None else month_bounds(day)[1])


def budget_period(limits: Mapping[str, float], as_of: date) -> BudgetPeriod | None:
    """The budget an outlook is judged against: the monthly limit over the month when
    there is one, else the weekly over the week, else the daily over the day, else the
    total over all spend to the end of the month; None without a positive limit."""
    clean = {w: float(v) for w, v in limits.items() if v is not None and float(v) > 0}
    for name in (*PREFERENCE, "total"):
        if name in clean:
            return window_budget(name, clean[name], as_of)
    return None
