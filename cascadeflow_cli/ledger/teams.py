"""Team budgets (`[budgets.teams.NAME]`): one limit per window that the members share.

A member's request is checked against each of their teams in the same transaction as
their own budget: the gate's ``budget_lock`` also holds each team's lock (PostgreSQL: an
advisory lock per team; SQLite: the file's write lock covers everything), so two members
on two hosts cannot both spend the team's last dollar. A team's spend in a window is the
sum of its members' spend, and its in-flight amount the sum of their reservations, read
in the same ``spend_state`` call as the member's own windows (so both backends count alike).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cascadeflow_cli.money import nanos_from_usd

if TYPE_CHECKING:
    from cascadeflow_cli.config import AppConfig, TeamBudget
    from cascadeflow_cli.ledger.enforcement import BudgetScope


def teams_of(config: AppConfig, user: str) -> list[tuple[str, TeamBudget]]:
    """The teams ``user`` belongs to, by name (a stable order: the lock order too). The
    members are NFC (config parse); ``user`` may be a legacy name stored decomposed."""
    nfc = unicodedata.normalize("NFC", user)
    return sorted((name, team) for name, team in config.budgets.teams.items() if nfc in team.members)


def _stored_forms(members: Sequence[str]) -> tuple[str, ...]:
    """The members and, for a name that has one, its decomposed form (NFD): a member's
    spend recorded by an older version under that form is the team's spend too."""
    nfd = (unicodedata.normalize("NFD", m) for m in members)
    return tuple(dict.fromkeys([*members, *nfd]))


def team_scopes(teams: Sequence[tuple[str, TeamBudget]]) -> list[BudgetScope]:
    """What each team's windows are checked against: the members' spend together."""
    from cascadeflow_cli.ledger.enforcement import BudgetScope

    return [BudgetScope(_stored_forms(team.members),
                        {w: nanos_from_usd(limit) for w, limit in team.limits.items()},
                        scope=f"team {name}") for name, team in teams]
