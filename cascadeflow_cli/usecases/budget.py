"""A user's budget: where they stand now, what the next request would get, and where
this period's spend is heading."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.dates import today
from cascadeflow_cli.usecases.forecast import budget_outlook, future_note

if TYPE_CHECKING:
    from cascadeflow_cli.analytics.forecast import BudgetOutlook
    from cascadeflow_cli.config import AppConfig
    from cascadeflow_cli.ledger.db import Ledger
    from cascadeflow_cli.ledger.status import BudgetStatus

TYPICAL_PROMPT_CHARS = 200  # a short question: what "the next request" is judged as


@dataclass(frozen=True)
class NextRequestEstimate:
    """The worst case of a typical next request on the configured chain, and on the
    cheaper chain degrade mode would use (None: there is none, or it is not cheaper).
    ``priced`` is False when a model of the chain has no known price: both are 0/None
    then, and the status shows where the user stands without judging a next request."""

    worst_case_nusd: int
    degraded_nusd: int | None
    priced: bool = True


@dataclass(frozen=True)
class BudgetReport:
    """`cascade budget show`: the status and, with a budget, the period's outlook."""

    status: BudgetStatus
    outlook: BudgetOutlook | None
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = self.status.to_json()
        # the sentence names the user, as the screen's does ("at this pace spend spends...")
        data["outlook"] = self.outlook.to_json(self.status.user) if self.outlook else None
        data["notes"] = list(self.notes)
        return data


def estimate_next_request(config: AppConfig) -> NextRequestEstimate:
    """What a typical next request (a short question, the configured chain and token
    limit) costs at worst, as the budget gate would reserve it."""
    from cascadeflow_cli.engine.costs import ChainCosts
    from cascadeflow_cli.errors import PricingError

    costs = ChainCosts(config)
    names = list(config.cascade.models)
    messages = [{"role": "user", "content": "x" * TYPICAL_PROMPT_CHARS}]
    try:
        worst_case = costs.estimate(messages, config.cascade.max_tokens)
        estimate = worst_case(names)
        cheaper = costs.degraded_chain(names, worst_case)
        degraded = worst_case(cheaper) if cheaper else None
    except PricingError:  # an unpriced model: the state now, no judgement of a next request
        return NextRequestEstimate(0, None, priced=False)
    return NextRequestEstimate(estimate, degraded)


def budget_report(ledger: Ledger, config: AppConfig, user: str) -> BudgetReport:
    """Limits, spend, what is left and when each window resets, what the next request
    gets, and (with a budget) the outlook of this period."""
    from cascadeflow_cli.ledger.status import budget_status

    estimate = estimate_next_request(config)
    status = budget_status(ledger, config, user, estimate.worst_case_nusd, estimate.degraded_nusd)
    outlook = budget_outlook(ledger, config, user) if status.budget is not None else None
    if outlook is None:
        return BudgetReport(status, outlook)
    # a row dated after today counts in the window that holds its date, and the outlook
    # (a forecast from the days before today) leaves it out: a $700 row dated in three
    # days showed "spent $706.00 of $50.00" above "at this pace spends $62.00 of the $50.00"
    note = future_note(ledger, user, config.ledger.timezone, today(ledger.clock, config.ledger.timezone),
                       counted="the windows holding those dates count it, the outlook does not")
    return BudgetReport(status, outlook, (note,) if note else ())
