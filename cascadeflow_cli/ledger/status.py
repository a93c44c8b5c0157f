"""A user's budget position right now: per window, what is spent, what is left, when it
resets, and what the next request would get. Used by `cascade budget show` and the
Python API (CostTracker)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.ledger.budgets import BudgetConfig, effective_budget
from cascadeflow_cli.ledger.enforcement import Verdict, WindowState, judge, read_states, window_states
from cascadeflow_cli.ledger.teams import team_scopes, teams_of
from cascadeflow_cli.money import usd

if TYPE_CHECKING:
    from cascadeflow_cli.config import AppConfig
    from cascadeflow_cli.ledger.storage import LedgerStore


@dataclass(frozen=True)
class BudgetStatus:
    user: str
    budget: BudgetConfig | None
    source: str  # "user" | "default" | "none"
    states: list[WindowState]
    next: Verdict
    next_estimate_nusd: int
    requests: int
    mode: str
    timezone: str
    # the windows of the user's teams (``scope`` "team NAME"), judged with their own: a team
    # at its limit blocked the next request while `budget show` said "next request → allow"
    team_states: list[WindowState] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The `cascade budget show --json` object of CLI.md (plus a few extras)."""
        from zoneinfo import ZoneInfo

        tz = ZoneInfo(self.timezone)

        def local(moment: datetime | None) -> str | None:
            return moment.astimezone(tz).isoformat(timespec="seconds") if moment else None

        def row(s: WindowState) -> dict[str, Any]:
            return {
                "window": s.window,
                "limit": usd(s.limit_nusd),
                "spent": usd(s.spent_nusd),
                "reserved": usd(s.reserved_nusd),
                "remaining": usd(max(s.limit_nusd - s.used_nusd, 0)),
                "pct_used": s.pct_used,
                "resets_at": local(s.resets_at),
            }

        return {
            "user": self.user,
            "windows": [row(s) for s in self.states],
            "team_windows": [{"team": (s.scope or "").removeprefix("team "), **row(s)}
                             for s in self.team_states],
            "next_action": self.next.action,
            "next_message": self.next.message,
            "source": self.source,
            "mode": self.mode,
            "timezone": self.timezone,
            "requests": self.requests,
        }


def budget_status(
    ledger: LedgerStore,
    config: AppConfig,
    user: str,
    next_estimate_nusd: int = 0,
    degraded_estimate_nusd: int | None = None,
) -> BudgetStatus:
    """``next_estimate_nusd``: the worst case of the request to judge (0: the state now);
    ``degraded_estimate_nusd``: the same on the degraded chain, if there is one."""
    own = ledger.get_budget(user)
    budget = own if own is not None else effective_budget(ledger, config, user)
    source = "user" if own is not None else ("default" if budget is not None else "none")
    now, timezone = ledger.clock.now(), config.ledger.timezone
    states = window_states(ledger, timezone, user, budget, now)
    teams = teams_of(config, user)
    team_states = read_states(ledger, timezone, team_scopes(teams), now) if teams else []
    verdict = judge(user, states + team_states, next_estimate_nusd, degraded_estimate_nusd, config.budgets)
    return BudgetStatus(
        user,
        budget,
        source,
        states,
        verdict,
        next_estimate_nusd,
        ledger.request_count(user),
        config.budgets.mode,
        config.ledger.timezone,
        team_states,
    )
