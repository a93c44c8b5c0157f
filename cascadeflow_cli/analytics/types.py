"""The public results of forecasting: a day's forecast, a budget period, the outlook
against it, and the whole prediction (with the `cascade forecast --json` object)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from cascadeflow_cli.money import format_dollars

PERIOD_WORDS = {"daily": "today", "weekly": "this week", "monthly": "this month"}


@dataclass(frozen=True)
class DailyForecast:
    """Forecast spend for one day, USD."""

    date: date
    mean: float
    lower: float
    upper: float


@dataclass(frozen=True)
class BudgetPeriod:
    """A budget limit over a period of days (inclusive), USD: one window's own limit over
    its own period (a daily limit is judged over the day, never scaled to a month).
    ``window_limit`` is kept for callers of the older API (always None now)."""

    window: str
    limit: float
    period_start: date
    period_end: date
    window_limit: float | None = None


@dataclass(frozen=True)
class BudgetOutlook:
    """Where spend in a budget period is heading: spent so far plus the forecast."""

    window: str
    limit: float
    period_start: date
    period_end: date
    spent_to_date: float  # in the period so far, today's spend included
    expected_total: float  # spent plus the mean forecast of the rest of the period
    lower: float
    upper: float
    risk: float  # probability that the period's total exceeds the limit
    exceed_date: date | None  # the day expected cumulative spend first passes the limit
    window_limit: float | None = None

    @property
    def alert(self) -> bool:
        """Worth telling the user: likely to exceed, or already over."""
        return self.risk >= 0.5 or self.spent_to_date > self.limit

    @property
    def message(self) -> str:
        return self.describe()

    def describe(self, who: str | None = None) -> str:
        """One sentence: "at this pace alice spends $41.20 of the $50.00 monthly budget
        this month; risk of exceeding 0.12"."""
        subject = who or "spend"
        budget = f"the {money(self.limit)} {self.window} budget"
        when = PERIOD_WORDS.get(self.window, f"by {self.period_end.isoformat()}")
        if self.spent_to_date > self.limit:
            return (f"{subject} is already over {budget}: spent {money(self.spent_to_date)} "
                    f"{when if self.window != 'total' else 'so far'}")
        # the expected total is a mean: where it and the risk disagree (a quiet that may
        # last, a lopsided interval) it is said to be one, and the day the mean passes the
        # limit is no date to name ("$84.22 of the $50.00 ..., passing it on 2026-12-24;
        # risk of exceeding 0.29")
        agree = (self.expected_total > self.limit) == (self.risk >= 0.5)
        spends = "spends" if agree else "spends on average"
        text = f"at this pace {subject} {spends} {money(self.expected_total)} of {budget} {when}"
        if self.exceed_date is not None and self.window != "daily" and agree:
            text += f", passing it on {self.exceed_date.isoformat()}"
        return f"{text}; risk of exceeding {self.risk:.2f}"

    def to_json(self, who: str | None = None) -> dict[str, Any]:
        return {
            "window": self.window,
            "limit": finite(self.limit),
            "window_limit": finite(self.window_limit) if self.window_limit is not None else None,
            "period_start": None if self.period_start == date.min else self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "spent_to_date": finite(self.spent_to_date),
            "expected_total": finite(self.expected_total),
            "lower": finite(self.lower),
            "upper": finite(self.upper),
            "risk": finite(self.risk),
            "exceed_date": self.exceed_date.isoformat() if self.exceed_date else None,
            "alert": self.alert,
            "message": self.describe(who),
        }


@dataclass(frozen=True)
class CostPrediction:
    """A spend forecast for ``horizon_days`` days from ``as_of`` (inclusive), USD.

    ``mean``, ``median``, ``lower`` and ``upper`` describe the predictive distribution of
    the total over the horizon; ``lower``/``upper`` bound a central interval of probability
    ``confidence``, taken from the chosen method's own backtest errors; ``mean`` is the
    calibrated expectation (not inflated by the interval's small-sample widening)."""

    as_of: date
    horizon_days: int
    mean: float
    median: float
    lower: float
    upper: float
    std: float
    confidence: float
    daily: tuple[DailyForecast, ...]
    method: str
    history_days: int
    short_history: bool = False
    notes: tuple[str, ...] = ()
    budget: BudgetOutlook | None = None
    history: tuple[tuple[date, float], ...] = field(default=(), repr=False)  # the last year, zero-filled
    last_spend: date | None = None  # the last day with spend before ``as_of``

    @property
    def risk(self) -> float | None:
        """Probability that the budget period's spend exceeds the budget (None: no budget)."""
        return self.budget.risk if self.budget else None

    @property
    def risk_score(self) -> float:
        """The seed's name for ``risk`` (0.0 without a budget)."""
        return self.risk or 0.0

    def to_json(self, user: str | None = None) -> dict[str, Any]:
        """The `cascade forecast --json` object of CLI.md (plus a few extras)."""
        return {
            "user": user,
            "as_of": self.as_of.isoformat(),
            "horizon_days": self.horizon_days,
            "mean": finite(self.mean),
            "median": finite(self.median),
            "lower": finite(self.lower),
            "upper": finite(self.upper),
            "confidence": self.confidence,
            "daily": [{"date": d.date.isoformat(), "mean": finite(d.mean),
                       "lower": finite(d.lower), "upper": finite(d.upper)} for d in self.daily],
            "budget": self.budget.to_json(user) if self.budget else None,
            "risk": finite(self.risk) if self.risk is not None else None,
            "method": self.method,
            "history_days": self.history_days,
            "short_history": self.short_history,
            "last_spend": self.last_spend.isoformat() if self.last_spend else None,
            "notes": list(self.notes),
        }


def money(value: float) -> str:
    return format_dollars(value)


def finite(value: float | None, digits: int = 6) -> float:
    """A JSON-safe number: NaN and infinities never leave this package."""
    if value is None or not math.isfinite(value):
        return 0.0
    return round(float(value), digits)
