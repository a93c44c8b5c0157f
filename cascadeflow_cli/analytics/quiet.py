"""When the spend series ends in a quiet stretch longer than any before it: the data
may simply stop there (an import's last day, a ledger copied from elsewhere), and both
`cascade forecast` and `cascade anomalies` say so in the same words. Pure: no clock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from itertools import pairwise

from cascadeflow_cli.words import count_of


def stale_since(spend_days: Sequence[date], end: date) -> date | None:
    """The last day in ``spend_days`` (sorted days with spend) when the empty days
    between it and ``end`` (exclusive) number two or more and outrun every quiet
    stretch before it (a weekly spender's usual gap is not stale); else None."""
    if not spend_days:
        return None
    last = spend_days[-1]
    quiet = (end - last).days - 1
    longest = max(((b - a).days - 1 for a, b in pairwise(spend_days)),
                  default=0)
    return last if quiet >= 2 and quiet > longest else None


def no_spend_since(last: date, end: date) -> str:
    """The note's opening: "no spend recorded since 2026-11-23, 9 days" (to ``end``,
    exclusive: the day a forecast starts, the day after the judged window)."""
    return f"no spend recorded since {last.isoformat()}, {count_of((end - last).days, 'day')}"
