"""`cascade budget`: where a user stands per window, and the budgets set."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from cascadeflow_cli.cli.layout import FittedTable, fitted_table
from cascadeflow_cli.money import format_dollars, format_usd
from cascadeflow_cli.text import shown_name


def budget_table(status: Any) -> FittedTable:
    """`cascade budget show`: one row per window ("in flight" only when something is)."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(status.timezone)
    every = [*status.states, *status.team_states]
    in_flight = any(s.reserved_nusd for s in every)
    body = []
    for s in every:
        pct = s.fraction()
        style = "red" if pct >= 1 else "yellow" if pct >= 0.8 else "green"
        resets = s.resets_at.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z") if s.resets_at else "never"
        name = f"{s.window} ({shown_name(s.scope)})" if s.scope else s.window  # "daily (team red)"
        row = [name, format_usd(s.limit_nusd), format_usd(s.spent_nusd)]
        if in_flight:
            row.append(format_usd(s.reserved_nusd) if s.reserved_nusd else "-")
        used = Text(f"{s.pct_used:.0f}%", style=style)
        row += [format_usd(max(s.limit_nusd - s.used_nusd, 0)), used, resets]
        body.append(row)
    headers = [("window", "left"), ("limit", "right"), ("spent", "right")]
    if in_flight:
        headers.append(("in flight", "right"))
    headers += [("remaining", "right"), ("used", "right"), ("resets", "left")]
    caption = (
        f"{shown_name(status.user)} ({'team' if status.source == 'none' else status.source} budget, "
        f"mode {status.mode}): "
        f"next request → {status.next.action}"
    )
    return fitted_table(headers, body, flexible="resets", caption=caption)


def budgets_table(rows: list[tuple[str, Any]]) -> FittedTable:
    """`cascade budget list`: one row per user with a budget of their own."""
    from cascadeflow_cli.windows import WINDOWS

    body = [[shown_name(user), *("-" if (v := getattr(b, w)) is None else format_dollars(v) for w in WINDOWS)]
            for user, b in rows]
    return fitted_table([("user", "left")] + [(w, "right") for w in WINDOWS], body, flexible="user")
