"""The words of an anomaly report: its severity and its one-line description."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from cascadeflow_cli.money import format_dollars
from cascadeflow_cli.text import shown_name

if TYPE_CHECKING:
    from cascadeflow_cli.analytics.anomaly import Anomaly, _Finding

__all__ = ["describe", "severity_of"]


def severity_of(score: float, *, limit: float = 3.5, ratio: float = 1.0,
                stake: float = 0.0) -> str:
    """Severity from how far the score passed its threshold (``limit``) and the money at
    stake: ``ratio``, actual over expected (of a rise; 1 for a fall), and ``stake``, the
    change in USD over the user's typical day. A 20x spike or an 11x shift is high
    however noisy the series; a barely-passed threshold over cents is low."""
    beyond = abs(score) / limit if limit > 0 else math.inf
    if ratio >= 5.0 or stake >= 3.0 or beyond >= 2.5:
        return "high"
    if ratio >= 2.5 or stake >= 1.0 or beyond >= 1.5:
        return "medium"
    return "low"


def _money(usd: float) -> str:
    # to the ledger's nano-dollar: a baseline of 6.9e-18 (float noise of an empty stretch)
    # was shown as "$0.00000000000000000694 expected"
    return format_dollars(round(usd, 9))


def describe(f: _Finding, user: str | None, model: str | None, typical: float,
              threshold: float) -> Anomaly:
    # shown_name: a name an older version stored with a control character is spelled out
    # ('alice\r' printed as 'alice', ESC drove the terminal)
    shown = shown_name(user) if user else user
    who = f"model {model}" if model and not user else (f"{shown}/{model}" if model else (shown or "spend"))
    mads = f"{abs(f.score):.1f} MADs {'above' if f.score > 0 else 'below'} the usual level"
    if f.kind == "shift":
        direction = "up" if f.actual > f.expected else "down"
        ratio = (f.actual / f.expected) if f.expected > 0 else math.inf
        size = f" (x{ratio:.1f})" if math.isfinite(ratio) else ""
        text = (f"{who}: spend stepped {direction} from about {_money(f.expected)}/day to "
                f"{_money(f.actual)}/day{size} from {f.day.isoformat()}, {f.run} days in a row "
                f"({mads} on the first); the new level is the baseline from then on")
    else:
        what = "spike" if f.kind == "spike" else "drop"
        text = (f"{who}: {what}: {_money(f.actual)} on {f.day.isoformat()} against "
                f"{_money(f.expected)} expected for a {f.day.strftime('%A')} ({mads})")
        if f.ongoing:
            text += "; too recent to tell whether it is a lasting shift"
    rise = f.actual / f.expected if f.expected > 0 else math.inf
    severity = severity_of(f.score, limit=f.limit or threshold, ratio=rise if rise > 1 else 1.0,
                           stake=abs(f.actual - f.expected) / typical if typical > 0 else 0.0)
    from cascadeflow_cli.analytics.anomaly import Anomaly

    return Anomaly(date=f.day, user=user, expected=f.expected, actual=f.actual, score=f.score,
                   severity=severity, kind=f.kind, description=text, model=model)
