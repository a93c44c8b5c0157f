"""`CostTracker`: the seed's Python API, kept, but over the ledger instead of memory,
so costs added from Python count against the same budgets as `cascade ask`."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from cascadeflow_cli.clock import format_ts
from cascadeflow_cli.config import AppConfig, load_config, resolve_db_path
from cascadeflow_cli.errors import InputError
from cascadeflow_cli.ids import random_id
from cascadeflow_cli.ledger.budgets import BudgetConfig, set_budget
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.ledger.enforcement import ACTIONS, EnforcementCallbacks, HookError, enforcement_context
from cascadeflow_cli.ledger.records import CallRecord, RequestRecord
from cascadeflow_cli.ledger.status import budget_status
from cascadeflow_cli.ledger.storage import LedgerStore
from cascadeflow_cli.money import nanos_from_usd, usd


class CostTracker:
    """Record costs and ask about budgets from Python.

    >>> tracker = CostTracker("ledger.db", user_budgets={"alice": BudgetConfig(daily=Decimal("5"))})
    >>> tracker.add_cost("gpt-4o-mini", "openai", tokens=1200, cost=0.0004, user_id="alice")
    >>> tracker.can_afford("alice", 0.01)
    (True, 'allow', None)
    """

    def __init__(
        self,
        ledger: LedgerStore | str | Path | None = None,
        config: AppConfig | None = None,
        *,
        user_budgets: dict[str, BudgetConfig] | None = None,
    ) -> None:
        self.config = config or load_config()
        if ledger is None or isinstance(ledger, str | Path):
            path = Path(ledger) if ledger else resolve_db_path(None, self.config)
            self.ledger: LedgerStore = open_ledger(path)
        else:
            self.ledger = ledger
        self.callbacks = EnforcementCallbacks.from_config(
            dict(self.config.hooks), self.config.source.parent if self.config.source else None
        )
        for user, budget in (user_budgets or {}).items():
            set_budget(self.ledger, user, budget)

    def set_budget(self, user_id: str, budget: BudgetConfig) -> BudgetConfig:
        return set_budget(self.ledger, user_id, budget)

    def add_cost(
        self,
        model: str,
        provider: str,
        tokens: int,
        cost: float | Decimal | str,
        query_id: str | None = None,
        user_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> str:
        """Record one call made outside the cascade; returns its request id. ``cost`` in USD."""
        nanos = nanos_from_usd(cost)
        if nanos < 0:
            raise InputError(f"cost must not be negative, got {cost!r}")
        request_id = query_id or random_id()
        ts = format_ts(self.ledger.clock.now())
        out = output_tokens if output_tokens is not None else max(tokens - (input_tokens or 0), 0)
        call = CallRecord(
            id=f"{request_id}-0",
            request_id=request_id,
            ts=ts,
            seq=0,
            role="external",
            model=model,
            model_id=model,
            provider=provider,
            status="ok",
            input_tokens=input_tokens or 0,
            output_tokens=out,
            cost_nusd=nanos,
            cost_source="caller",
            error=json.dumps(metadata) if metadata else None,
        )
        self.ledger.record(
            RequestRecord(
                id=request_id,
                ts=ts,
                user=user_id or "default",
                status="ok",
                query=None,
                answer=None,
                model=model,
                cost_nusd=nanos,
                calls=(call,),
            )
        )
        return request_id

    def get_user_summary(self, user_id: str) -> dict[str, Any]:
        status = budget_status(self.ledger, self.config, user_id)
        return {
            "user_id": user_id,
            "total_cost": usd(self.ledger.total_spend(user_id)),
            "entries": status.requests,
            "budget": status.budget,
            "windows": status.to_json()["windows"],
            "next_action": status.next.action,
        }

    def can_afford(self, user_id: str, estimated_cost: float | Decimal | str) -> tuple[bool, str, str | None]:
        """``(can_proceed, action, message)`` for a request of ``estimated_cost`` USD, by
        the configured policy and hooks. Reserves nothing: `cascade ask` does that."""
        estimate = nanos_from_usd(estimated_cost)
        status = budget_status(self.ledger, self.config, user_id, estimate)
        action, message = status.next.action, status.next.message
        if self.callbacks.on_budget_check is not None:
            ctx = enforcement_context(user_id, status.states, estimate, status.requests)
            try:
                hook_action, hook_message = self.callbacks.check_budget(ctx)
            except HookError as exc:
                return False, "block", f"blocked: {exc}"
            if ACTIONS.index(hook_action) > ACTIONS.index(action):
                action, message = hook_action, hook_message
        return action != "block", action, message
