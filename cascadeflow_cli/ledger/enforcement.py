"""Enforcement: the policy (a pure function of window states and a cost estimate), the
user's hooks, and the gate that checks and reserves in one ``BEGIN IMMEDIATE``
transaction, so concurrent processes cannot both spend the last dollar."""

from __future__ import annotations

import importlib
import math
import os
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cascadeflow_cli.clock import format_ts
from cascadeflow_cli.config import BudgetsConfig
from cascadeflow_cli.errors import ConfigError, RevokedKeyError
from cascadeflow_cli.ids import random_id
from cascadeflow_cli.ledger.budgets import BudgetConfig, effective_budget
from cascadeflow_cli.ledger.keys import key_states
from cascadeflow_cli.ledger.liveness import forget_own, hold_own
from cascadeflow_cli.ledger.storage import Hold, SpendAsk
from cascadeflow_cli.ledger.teams import team_scopes, teams_of
from cascadeflow_cli.money import format_usd, usd
from cascadeflow_cli.windows import window

if TYPE_CHECKING:
    from cascadeflow_cli.config import AppConfig
    from cascadeflow_cli.ledger.keys import ApiKey
    from cascadeflow_cli.ledger.storage import BudgetTransaction, LedgerStore, SpendReader

_T = TypeVar("_T")

ACTIONS = ("allow", "warn", "degrade", "block")
_SEVERITY = {a: i for i, a in enumerate(ACTIONS)}


@dataclass(frozen=True)
class WindowState:
    window: str
    limit_nusd: int
    spent_nusd: int
    reserved_nusd: int
    start: datetime
    resets_at: datetime | None
    scope: str | None = None  # "team NAME" for a team budget's window; None: the user's own

    @property
    def used_nusd(self) -> int:
        return self.spent_nusd + self.reserved_nusd

    def fraction(self, extra_nusd: int = 0) -> float:
        """Share of the limit used; a $0 limit ("may spend nothing") is exactly used up
        while nothing is spent, and infinitely past it after."""
        used = self.used_nusd + extra_nusd
        if self.limit_nusd <= 0:
            return 1.0 if used <= 0 else math.inf
        return used / self.limit_nusd

    @property
    def pct_used(self) -> float:
        """Percent of the limit used, finite for JSON (a spent $0 limit shows 100)."""
        fraction = self.fraction()
        return round(100 * fraction, 2) if math.isfinite(fraction) else 100.0

    def crosses(self, at: float, extra_nusd: int) -> bool:
        """Would spending ``extra_nusd`` more go past ``at`` × the limit? Exact integers."""
        return (self.used_nusd + extra_nusd) * 10**6 > int(Decimal(str(at)) * 10**6) * self.limit_nusd


@dataclass(frozen=True)
class Verdict:
    action: str
    window: WindowState | None = None
    message: str | None = None


def _percent(fraction: float) -> str:
    return f"{fraction:.0%}" if math.isfinite(fraction) else "all"


def _tightest(states: Sequence[WindowState], extra: int = 0) -> WindowState:
    return max(states, key=lambda s: s.fraction(extra))


def _describe(user: str, s: WindowState, estimate: int | None = None) -> str:
    text = (f"{s.scope or user}'s {s.window} budget: spent {format_usd(s.spent_nusd)} "
            f"of {format_usd(s.limit_nusd)}")
    if s.reserved_nusd:
        text += f" (+{format_usd(s.reserved_nusd)} in flight)"
    if estimate is not None:
        text += f"; this request could cost up to {format_usd(estimate)}"
    return text


def judge(
    user: str,
    states: Sequence[WindowState],
    estimate_nusd: int,
    degraded_estimate_nusd: int | None,
    policy: BudgetsConfig,
) -> Verdict:
    """What to do with a request of at most ``estimate_nusd`` (``degraded_...`` on the
    cheaper chain, None if there is none). The tightest window decides.

    warn mode never refuses. block mode refuses a request that could cross ``block_at``.
    degrade mode switches to the cheaper chain from ``degrade_at`` on, or earlier if
    the full chain could cross ``block_at``, and refuses when even that could cross it.
    """
    if not states:
        return Verdict("allow")
    now = _tightest(states)
    pct = now.fraction()
    crossing = [s for s in states if s.crosses(policy.block_at, estimate_nusd)]
    if policy.mode != "warn" and crossing:
        worst = _tightest(crossing, estimate_nusd)
        if (
            policy.mode == "degrade"
            and degraded_estimate_nusd is not None
            and not any(s.crosses(policy.block_at, degraded_estimate_nusd) for s in states)
        ):
            return Verdict("degrade", worst, f"switched to cheaper models: {_describe(user, worst)}")
        return Verdict("block", worst, f"blocked: {_describe(user, worst, estimate_nusd)}")
    if policy.mode == "degrade" and pct >= policy.degrade_at and degraded_estimate_nusd is not None:
        text = f"switched to cheaper models: {_describe(user, now)} ({_percent(pct)} used)"
        return Verdict("degrade", now, text)
    if pct >= policy.warn_at:
        return Verdict("warn", now, f"warning: {_describe(user, now)} ({_percent(pct)} used)")
    return Verdict("allow", now)


# --- hooks ------------------------------------------------------------------------


@dataclass(frozen=True)
class EnforcementContext:
    """What a hook is told about the request. Amounts in USD; the limit fields are None
    when the user has no budget. ``window`` names the tightest window."""

    user_id: str
    budget_limit: float | None
    budget_remaining: float | None
    budget_used: float
    budget_pct_used: float
    current_cost: float
    total_requests: int
    window: str | None


class HookError(Exception):
    """A hook raised or returned something unusable: the request is blocked."""


class EnforcementCallbacks:
    """The user's own enforcement, named in ``[hooks]`` as "module:function"."""

    def __init__(
        self,
        on_budget_check: Callable[[EnforcementContext], Any] | None = None,
        on_model_filter: Callable[[EnforcementContext, list[str]], Any] | None = None,
        on_budget_warning: Callable[[EnforcementContext], Any] | None = None,
    ) -> None:
        self.on_budget_check = on_budget_check
        self.on_model_filter = on_model_filter
        self.on_budget_warning = on_budget_warning

    @property
    def active(self) -> bool:
        return any((self.on_budget_check, self.on_model_filter, self.on_budget_warning))

    @classmethod
    def from_config(cls, hooks: dict[str, str], base_dir: Path | None) -> EnforcementCallbacks:
        return cls(**{name: load_hook(spec, name, base_dir) for name, spec in hooks.items()})

    def check_budget(self, ctx: EnforcementContext) -> tuple[str, str | None]:
        if self.on_budget_check is None:
            return "allow", None
        result = _call(self.on_budget_check, "on_budget_check", ctx)
        if isinstance(result, str):
            result = (result, None)
        if (
            not isinstance(result, tuple | list)
            or len(result) != 2
            or result[0] not in ACTIONS
            or not (result[1] is None or isinstance(result[1], str))
        ):
            raise HookError(
                f"on_budget_check returned {result!r}; expected (action, message) "
                f"with action one of {', '.join(ACTIONS)}"
            )
        return result[0], result[1]

    def filter_models(self, ctx: EnforcementContext, models: list[str]) -> list[str]:
        if self.on_model_filter is None:
            return models
        result = _call(self.on_model_filter, "on_model_filter", ctx, list(models))
        if not isinstance(result, list | tuple) or not result or any(m not in models for m in result):
            raise HookError(f"on_model_filter returned {result!r}; expected a non-empty subset of {models}")
        return [m for m in models if m in result]  # keep the chain's cheapest-first order

    def budget_warning(self, ctx: EnforcementContext) -> None:
        if self.on_budget_warning is not None:
            _call(self.on_budget_warning, "on_budget_warning", ctx)


def _call(hook: Callable[..., Any], name: str, *args: Any) -> Any:
    try:
        return hook(*args)
    except Exception as exc:
        raise HookError(f"{name} hook failed: {type(exc).__name__}: {exc}") from None


def load_hook(spec: str, name: str, base_dir: Path | None) -> Callable[..., Any]:
    """Import "module:function", looking next to the config file and in the cwd too."""
    module_name, _, func_name = spec.partition(":")
    for extra in (base_dir, Path.cwd()):
        if extra is not None and str(extra) not in sys.path:
            sys.path.insert(0, str(extra))
    try:
        module = importlib.import_module(module_name)
        func = getattr(module, func_name)
    except Exception as exc:
        raise ConfigError(f"hooks.{name}: cannot load {spec!r}: {type(exc).__name__}: {exc}") from None
    if not callable(func):
        raise ConfigError(f"hooks.{name}: {spec!r} is not callable")
    return func


# --- the gate ---------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    action: str
    message: str | None
    models: list[str]
    reservation_id: str | None = None
    window: WindowState | None = None
    warn_context: EnforcementContext | None = field(default=None, repr=False)


def enforcement_context(
    user: str, states: Sequence[WindowState], estimate: int, requests: int
) -> EnforcementContext:
    if not states:
        return EnforcementContext(user, None, None, 0.0, 0.0, usd(estimate), requests, None)
    s = _tightest(states)
    return EnforcementContext(
        user,
        usd(s.limit_nusd),
        usd(s.limit_nusd - s.used_nusd),
        usd(s.used_nusd),
        s.fraction(),
        usd(estimate),
        requests,
        s.window,
    )


@dataclass(frozen=True)
class BudgetScope:
    """One set of limits a request is checked against: the user's own budget, or a team's
    (``scope`` "team NAME"), whose spend is the sum of ``users``' spend."""

    users: tuple[str, ...]
    limits_nusd: dict[str, int]  # window name -> limit
    scope: str | None = None


def own_scope(user: str, budget: BudgetConfig | None) -> list[BudgetScope]:
    return [] if budget is None else [BudgetScope((user,), budget.limits_nusd())]


def read_states(spend: SpendReader, timezone: str, scopes: Sequence[BudgetScope], now: datetime
                ) -> list[WindowState]:
    """Each limited window of each scope, with its spend and in-flight reservations, all
    read in one ``spend_state`` (a server: one round trip for a user and their teams)."""
    wins = [[window(name, now, timezone) for name in s.limits_nusd] for s in scopes]
    answers = spend.spend_state([SpendAsk(s.users, tuple(w)) for s, w in zip(scopes, wins, strict=True)])
    return [WindowState(win.name, s.limits_nusd[win.name], spent, answer.reserved_nusd, win.start, win.end,
                        s.scope)
            for s, ws, answer in zip(scopes, wins, answers, strict=True)
            for win, spent in zip(ws, answer.spent, strict=True)]


def window_states(
    spend: SpendReader, timezone: str, user: str, budget: BudgetConfig | None, now: datetime
) -> list[WindowState]:
    """Each limited window of ``budget`` with the user's spend and in-flight reservations
    (read from the store, or inside its budget_lock)."""
    return read_states(spend, timezone, own_scope(user, budget), now)


class BudgetGate:
    """Checks a request against the user's budget and reserves its worst-case cost."""

    def __init__(
        self, ledger: LedgerStore, config: AppConfig, callbacks: EnforcementCallbacks | None = None
    ) -> None:
        self.ledger = ledger
        self.config = config
        # user -> budget, only when set to a dict (`cascade serve` on SQLite): a user known
        # to have one skips the read before the transaction, which reads it again itself
        self.budgets: dict[str, BudgetConfig] | None = None
        self.callbacks = (
            callbacks
            if callbacks is not None
            else EnforcementCallbacks.from_config(
                dict(config.hooks), config.source.parent if config.source else None
            )
        )

    def states(
        self, spend: SpendReader, user: str, budget: BudgetConfig | None, now: datetime
    ) -> list[WindowState]:
        return window_states(spend, self.config.ledger.timezone, user, budget, now)

    def reserve(
        self,
        user: str,
        request_id: str,
        models: list[str],
        estimate: Callable[[list[str]], int],
        degraded: Callable[[list[str]], list[str] | None],
        ttl_s: float,
        key: ApiKey | None = None,
        verify_key: bool = False,
    ) -> Decision:
        """Decide and, unless blocked, reserve. ``estimate(models)`` is the worst-case cost
        of a chain; ``degraded(models)`` its cheaper chain or None. ``key``: the API key the
        request came with (`cascade serve`), whose own budget is checked too; with
        ``verify_key`` (the server found it in its cache) it is checked to be still
        active in the reservation's own transaction: RevokedKeyError if it is not."""
        now = self.ledger.clock.now()
        budgets = self.budgets
        budget = budgets.get(user) if budgets is not None else None
        if budget is None:
            budget = effective_budget(self.ledger, self.config, user)
            if budget is not None and budgets is not None:
                if len(budgets) >= 10_000:  # a bound, not an eviction policy: budgets are few
                    budgets.clear()
                budgets[user] = budget
        hook_action, hook_message = "allow", None
        if self.callbacks.active:
            ctx = enforcement_context(
                user,
                self.states(self.ledger, user, budget, now),
                estimate(models),
                self.ledger.request_count(user),
            )
            try:
                models = self.callbacks.filter_models(ctx, models)
                hook_action, hook_message = self.callbacks.check_budget(ctx)
            except HookError as exc:
                return Decision("block", f"blocked: {exc}", models)
        teams = teams_of(self.config, user)
        cached = key.prefix if key is not None and verify_key else None
        key = key if key is not None and key.budget is not None else None
        if budget is None and not teams and key is None and hook_action not in ("degrade", "block"):
            if cached is not None and not self.ledger.api_key_active(cached):  # type: ignore[attr-defined]
                raise RevokedKeyError("the API key was revoked")
            return Decision(hook_action, hook_message, models)

        # pure functions of the chain: worked out before the write lock is taken (they were
        # a third of a served request's time in the transaction, py-spy --gil)
        full = estimate(models)
        cheaper = degraded(models)
        cheap = estimate(cheaper) if cheaper else None

        def decide(txn: BudgetTransaction) -> Decision:
            if cached is not None and not txn.api_key_active(cached):  # type: ignore[attr-defined]
                raise RevokedKeyError("the API key was revoked")  # rolls back this job only
            now = self.ledger.clock.now()
            txn.expire_reservations(now)
            own = budget
            if budgets is not None:  # the budget may have changed since it was cached: read it here
                own = effective_budget(txn, self.config, user)  # type: ignore[arg-type]
                if own is None:
                    budgets.pop(user, None)
                else:
                    budgets[user] = own
            # the user's windows and their teams', in the same transaction and one read
            states = read_states(txn, self.config.ledger.timezone,
                                 own_scope(user, own) + team_scopes(teams), now)
            if key is not None:
                states += key_states(txn, self.config.ledger.timezone, key, now)
            verdict = judge(user, states, full, cheap, self.config.budgets)
            action, message = verdict.action, verdict.message
            if _SEVERITY[hook_action] > _SEVERITY[action]:  # a hook can tighten, never loosen
                action, message = hook_action, hook_message or f"{hook_action} by on_budget_check"
                if action == "degrade" and cheaper is None:
                    action, message = (
                        "block",
                        "blocked: on_budget_check asked to degrade, but there is no cheaper chain",
                    )
            if action == "block":
                return Decision("block", message, models, window=verdict.window)
            chain, amount = (cheaper, cheap) if action == "degrade" and cheaper else (models, full)
            reservation = random_id()
            hold_own(reservation, ttl_s)
            txn.reserve(Hold(reservation, user, request_id, amount, format_ts(now),
                             format_ts(now + timedelta(seconds=ttl_s)), os.getpid(), socket.gethostname()))
            if key is not None:  # the key's spend is its requests': this links the request to it
                txn.link_key(key.prefix, request_id)  # type: ignore[attr-defined]
            warn_ctx = None
            if action in ("warn", "degrade") and verdict.window is not None:
                w = verdict.window
                warned = f"{w.scope}:{w.window}" if w.scope else w.window
                if not txn.first_warning(user, warned, format_ts(w.start), action, now):
                    message = None if action == "warn" else message  # warned already this window
                else:
                    warn_ctx = enforcement_context(user, states, amount, txn.request_count(user))
            return Decision(action, message, chain, reservation, verdict.window, warn_ctx)

        decision = locked(self.ledger, user, [name for name, _ in teams], decide)
        if decision.warn_context is not None:
            try:
                self.callbacks.budget_warning(decision.warn_context)
            except HookError as exc:
                self.ledger.release(decision.reservation_id)
                return Decision("block", f"blocked: {exc}", decision.models)
        return decision


def locked(
    ledger: LedgerStore, user: str, teams: Sequence[str], decide: Callable[[BudgetTransaction], _T]
) -> _T:
    """``decide(txn)`` inside ``ledger.budget_lock(user, teams)``. A store that runs such
    work on a writer thread of its own, many in one transaction (``run_locked``: the
    group-commit writer of `cascade serve`, ledger/group_commit.py), is handed it whole."""
    run_locked = getattr(ledger, "run_locked", None)
    if run_locked is not None:
        return run_locked(user, teams, decide)  # type: ignore[no-any-return]
    with ledger.budget_lock(user, teams=teams) as txn:
        return decide(txn)


def release(ledger: LedgerStore, reservation_id: str | None) -> None:
    """Drop a reservation whose request ended without being recorded."""
    ledger.release(reservation_id)
    forget_own(reservation_id)
