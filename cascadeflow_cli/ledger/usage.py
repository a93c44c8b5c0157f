"""Usage over the ledger: totals and breakdowns by user, model, provider, domain or day.

Pure queries returning dataclasses; money stays in integer nano-dollars. Request-level
groupings (user, domain, day) count each request once with its total cost; call-level
ones (model, provider) count each model call where it ran, so an escalated request
appears under both of its models, each with its own share of the cost.

Draft acceptance: of the drafts tried, the share that was good enough (no escalation).
Savings: what the chain's last model alone would have cost, minus what the cascade cost;
under model and provider it is credited to the request's draft model (the model whose
acceptance earned it, or whose rejection lost it).

Days are calendar days in the ledger's time zone. SQLite knows no time zones, so it sums
per 15-minute UTC slot (every zone offset in use is a multiple of 15 minutes) and Python
folds the slots into local days.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from datetime import date, datetime
from typing import Any

from cascadeflow_cli.dates import zero_filled
from cascadeflow_cli.ledger.export import LedgerFilter
from cascadeflow_cli.ledger.sql import money_sum_sql as exact_sum
from cascadeflow_cli.money import nanos

GROUPINGS = ("user", "model", "provider", "domain", "day")
_SLOT_SQL = ("substr(r.ts, 1, 14) || printf('%02d', cast(substr(r.ts, 15, 2) as integer) / 15 * 15)")
_CALL_KEYS = {"model": "c.model", "provider": "c.provider"}


@dataclass(frozen=True)
class UsageRow:
    """One group's figures (``key`` None: no value, e.g. requests without a domain)."""

    key: str | None
    requests: int = 0
    calls: int = 0
    cost_nusd: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    drafts: int = 0
    drafts_accepted: int = 0
    savings_nusd: int = 0
    verifier_only_nusd: int = 0
    errors: int = 0
    labelled: int = 0  # accepted drafts with a quality label (feedback, else shadow)
    labelled_good: int = 0

    @property
    def measured_quality(self) -> float | None:
        """The share of labelled accepted drafts that were good (issue 9)."""
        return self.labelled_good / self.labelled if self.labelled else None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def acceptance_rate(self) -> float | None:
        return self.drafts_accepted / self.drafts if self.drafts else None

    @property
    def savings_rate(self) -> float | None:
        """Savings as a share of the last-model-alone cost."""
        return self.savings_nusd / self.verifier_only_nusd if self.verifier_only_nusd else None

    def plus(self, other: UsageRow) -> UsageRow:
        sums = {f.name: getattr(self, f.name) + getattr(other, f.name)
                for f in fields(self) if f.name != "key"}
        return replace(self, **sums)


@dataclass(frozen=True)
class UsageReport:
    by: str | None
    total: UsageRow
    groups: tuple[UsageRow, ...]


# Runs a query written with ``?`` parameters; returns its rows.
Run = Callable[[str, list[Any]], list[tuple[Any, ...]]]


@dataclass(frozen=True)
class UsageSql:
    """What the usage queries spell differently per SQL dialect (the queries are shared:
    ledger/postgres/reports.py runs them with PostgreSQL's)."""

    day_slot: str  # the 15-minute UTC slot of r.ts, as "YYYY-MM-DDTHH:MM"
    money_sum: Callable[[str], str]  # an exact sum of an integer column
    count_if: Callable[[str], str]  # how many rows meet a condition
    no_labels: tuple[type[Exception], ...] = ()  # "no quality_labels table" (an old ledger, read only)

    def key(self, by: str) -> str:
        return _CALL_KEYS.get(by) or {"total": "''", "user": "r.user", "domain": "r.domain",
                                      "day": self.day_slot}[by]


SQLITE_USAGE = UsageSql(_SLOT_SQL, exact_sum, lambda cond: f"sum({cond})", (sqlite3.OperationalError,))


def usage(conn: sqlite3.Connection, flt: LedgerFilter | None = None, by: str | None = None,
          timezone: str = "UTC") -> UsageReport:
    """Totals, and per group when ``by`` is one of GROUPINGS."""
    return usage_report(lambda sql, params: conn.execute(sql, params).fetchall(), SQLITE_USAGE,
                        flt, by, timezone)


def usage_report(run: Run, sq: UsageSql, flt: LedgerFilter | None, by: str | None,
                 timezone: str) -> UsageReport:
    """``usage`` on any backend: ``run`` executes, ``sq`` spells the dialect's parts."""
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"unknown grouping {by!r}")
    flt = replace(flt or LedgerFilter(), model=None)
    total = _with_labels(_request_level(run, sq, flt, "total"), run, sq, flt, "total").get("", UsageRow(None))
    total = replace(total, key=None)
    if by is None:
        return UsageReport(None, total, ())
    if by in _CALL_KEYS:
        groups = list(_with_labels(_call_level(run, sq, flt, by), run, sq, flt, by).values())
    else:
        rows = _with_labels(_request_level(run, sq, flt, by), run, sq, flt, by)
        groups = list(_fold_days(rows.values(), timezone) if by == "day" else rows.values())
    if by == "day":
        groups.sort(key=lambda g: g.key or "")
    else:
        groups.sort(key=lambda g: (-g.cost_nusd, -g.requests, g.key is None, g.key or ""))
    return UsageReport(by, total, tuple(groups))


def _count(value: Any) -> int:
    return int(value or 0)


def _request_level(run: Run, sq: UsageSql, flt: LedgerFilter, by: str) -> dict[str | None, UsageRow]:
    key, total = sq.key(by), sq.money_sum
    errors_sql, drafts_sql = sq.count_if("r.status != 'ok'"), sq.count_if("c.seq = 0 AND c.role = 'draft'")
    where, params = flt.where(calls=None)
    per_request = run(
        f"SELECT {key} AS k, count(*), {total('r.cost_nusd')}, {total('r.savings_nusd')}, "
        f"{total('r.verifier_only_cost_nusd')}, sum(r.draft_accepted), {errors_sql} "
        f"FROM requests r WHERE {where} GROUP BY k", params)
    per_call = run(
        f"SELECT {key} AS k, count(c.id), {total('c.input_tokens')}, {total('c.output_tokens')}, "
        f"{drafts_sql} "
        f"FROM requests r JOIN calls c ON c.request_id = r.id WHERE {where} GROUP BY k", params)
    calls = {row[0]: row for row in per_call}
    result: dict[str | None, UsageRow] = {}
    for k, requests, cost, savings, baseline, accepted, errors in per_request:
        _, n_calls, tokens_in, tokens_out, drafts = calls.get(k, (k, 0, 0, 0, 0))
        result[k] = UsageRow(k, requests, _count(n_calls), nanos(cost), nanos(tokens_in),
                             nanos(tokens_out), _count(drafts), _count(accepted), nanos(savings),
                             nanos(baseline), _count(errors))
    return result


def _call_level(run: Run, sq: UsageSql, flt: LedgerFilter, by: str) -> dict[str | None, UsageRow]:
    key, total = sq.key(by), sq.money_sum
    drafts_sql, accepted_sql, errors_sql = (sq.count_if(c) for c in (
        "c.role = 'draft'", "c.role = 'draft' AND c.accepted = 1", "c.status != 'ok'"))
    where, params = flt.where(calls=None)
    per_call = run(
        f"SELECT {key} AS k, count(DISTINCT c.request_id), count(*), {total('c.cost_nusd')}, "
        f"{total('c.input_tokens')}, {total('c.output_tokens')}, {drafts_sql}, "
        f"{accepted_sql}, {errors_sql} "
        f"FROM requests r JOIN calls c ON c.request_id = r.id WHERE {where} GROUP BY k", params)
    credited = run(
        f"SELECT {key} AS k, {total('r.savings_nusd')}, {total('r.verifier_only_cost_nusd')} "
        f"FROM requests r JOIN calls c ON c.request_id = r.id AND c.seq = 0 WHERE {where} "
        f"GROUP BY k", params)
    savings = {row[0]: row for row in credited}
    result: dict[str | None, UsageRow] = {}
    for k, requests, n_calls, cost, tokens_in, tokens_out, drafts, accepted, errors in per_call:
        _, saved, baseline = savings.get(k, (k, 0, 0))
        result[k] = UsageRow(k, requests, n_calls, nanos(cost), nanos(tokens_in), nanos(tokens_out),
                             _count(drafts), _count(accepted), nanos(saved), nanos(baseline), _count(errors))
    return result


# A request's label: the user's word first, else the shadow verifier's agreement.
_LABELS_SQL = (
    "SELECT request_id, coalesce(max(CASE WHEN source = 'feedback' THEN correct END), "
    "max(CASE WHEN source = 'shadow' THEN correct END)) AS correct FROM quality_labels GROUP BY request_id"
)


def _with_labels(rows: dict[str | None, UsageRow], run: Run, sq: UsageSql, flt: LedgerFilter,
                 by: str) -> dict[str | None, UsageRow]:
    """Add the measured quality of accepted drafts; under model and provider it is
    credited to the draft model, like savings."""
    join = "JOIN calls c ON c.request_id = r.id AND c.seq = 0" if by in _CALL_KEYS else ""
    where, params = flt.where(calls=None)
    try:
        found = run(
            f"SELECT {sq.key(by)} AS k, count(*), sum(l.correct) FROM requests r "
            f"JOIN ({_LABELS_SQL}) l ON l.request_id = r.id {join} "
            f"WHERE {where} AND r.draft_accepted = 1 AND l.correct IS NOT NULL GROUP BY k", params)
    except sq.no_labels:
        return rows
    for k, n, good in found:
        if k in rows:
            rows[k] = replace(rows[k], labelled=_count(n), labelled_good=_count(good))
    return rows


def _fold_days(slots: Iterable[UsageRow], timezone: str) -> list[UsageRow]:
    """15-minute UTC slots ("YYYY-MM-DDTHH:MM") into local days, with empty days between
    the first and the last filled in so a chart shows the gaps."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(timezone)
    days: dict[date, UsageRow] = {}
    for slot in slots:
        start = datetime.fromisoformat(f"{slot.key}:00+00:00")
        day = start.astimezone(tz).date()
        days[day] = days[day].plus(slot) if day in days else replace(slot, key=day.isoformat())
    return [row if row is not None else UsageRow(day.isoformat()) for day, row in zero_filled(days, None)]
