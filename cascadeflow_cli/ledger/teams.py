"""Team budgets (`[budgets.teams.NAME]`): one limit per window that the members share.

A member's request is checked against each of their teams in the same transaction as
their own budget: the gate's ``budget_lock`` also holds each team's lock (PostgreSQL: an
advisory lock per team; SQLite: the file's write lock covers everything), so two members
on two hosts cannot both spend the team's last dollar. A team's spend in a window is the
sum of its members' spend, and its in-flight amount the sum of their reservations, read
through the same SpendReader calls as a user's (so both backends count alike).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from cascadeflow_cli.money import nanos_from_usd
from cascadeflow_cli.windows import window

if TYPE_CHECKING:
    from cascadeflow_cli.config import AppConfig, TeamBudget
    from cascadeflow_cli.ledger.enforcement import WindowState
    from cascadeflow_cli.ledger.storage import SpendReader


def teams_of(config: AppConfig, user: str) -> list[tuple[str, TeamBudget]]:
    """The teams ``user`` belongs to, by name (a stable order: the lock order too)."""
    return sorted((name, team) for name, team in config.budgets.teams.items() if user in team.members)


def team_states(spend: SpendReader, timezone: str, teams: Sequence[tuple[str, TeamBudget]],
                now: datetime) -> list[WindowState]:
    """Each limited window of each team, with the members' spend and reservations."""
    from cascadeflow_cli.ledger.enforcement import WindowState

    out = []
    for name, team in teams:
        reserved = sum(spend.reserved_spend(m) for m in team.members)  # first: see budget_sql.py
        for win_name, limit in team.limits.items():
            win = window(win_name, now, timezone)
            spent = sum(spend.window_spend(m, win) for m in team.members)
            out.append(WindowState(win_name, nanos_from_usd(limit), spent, reserved, win.start, win.end,
                                   scope=f"team {name}"))
    return out
