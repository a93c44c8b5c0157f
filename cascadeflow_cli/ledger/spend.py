"""Daily spend series from the ledger, by calendar day in the configured time zone.

SQLite knows no time zones, but it can shift a UTC timestamp by a fixed number of
minutes. A zone's offset is constant between its transitions (DST changes), so the range
asked for is cut at those transitions and one query groups every row by
``date(ts, <offset of its stretch>)``: one index range scan, at most one row per day back.

``daily_spend``/``daily_spend_by`` take any LedgerStore (ledger/storage.py) and zero-fill
what its ``daily_totals`` returns; ``sqlite_daily_totals`` below is SQLite's. Amounts are
integer nano-dollars. Requests give a user's spend (``requests.cost_nusd``:
the request's total, failed requests included, since their calls were paid for); per-model
series come from the model calls (``calls.cost_nusd`` by ``calls.model``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from cascadeflow_cli.clock import format_ts, parse_ts
from cascadeflow_cli.dates import zero_filled
from cascadeflow_cli.ledger.sql import money_sum_sql
from cascadeflow_cli.money import nanos
from cascadeflow_cli.windows import local_midnight

if TYPE_CHECKING:
    from cascadeflow_cli.ledger.sqlite_conn import Database
    from cascadeflow_cli.ledger.storage import DailyTotals, LedgerStore

Series = list[tuple[date, int]]


def daily_spend(ledger: LedgerStore, *, user: str | None = None, model: str | None = None,
                timezone: str = "UTC", start: date | None = None, end: date | None = None) -> Series:
    """Spend per local day (nano-dollars), zero-filled from ``start`` (else the first day
    with a row) to ``end`` (else the last day with a row), both inclusive. ``model``
    selects that model's calls; otherwise whole requests are counted."""
    days = spend_days(ledger, user=user, model=model, timezone=timezone, start=start, end=end)
    return _fill(days, start, end)


def spend_days(ledger: LedgerStore, *, user: str | None = None, model: str | None = None,
               timezone: str = "UTC", start: date | None = None, end: date | None = None) -> dict[date, int]:
    """``daily_spend``'s days with rows only, not zero-filled (nano-dollars): for reads
    whose range may run to a row dated 2099 or an --as-of in 9998."""
    rows = ledger.daily_totals(by=None, user=user, model=model, timezone=timezone, start=start, end=end)
    return rows.get(None, {})


def daily_spend_by(ledger: LedgerStore, by: str, *, user: str | None = None, timezone: str = "UTC",
                   start: date | None = None, end: date | None = None) -> dict[str, Series]:
    """``daily_spend`` for every user (``by="user"``) or every model (``by="model"``,
    optionally within one user's requests) in one query; each series zero-filled."""
    if by not in ("user", "model"):
        raise ValueError(f"daily_spend_by: by must be 'user' or 'model', not {by!r}")
    rows = ledger.daily_totals(by=by, user=user, model=None, timezone=timezone, start=start, end=end)
    ordered = sorted(rows.items(), key=lambda kv: str(kv[0]))
    return {str(key): _fill(days, start, end) for key, days in ordered}


def sqlite_daily_totals(db: Database, *, by: str | None, user: str | None, model: str | None,
                        timezone: str, start: date | None, end: date | None) -> DailyTotals:
    """The SQLite backend's ``LedgerStore.daily_totals``."""
    q = daily_query(by=by, user=user, model=model, timezone=timezone, start=start, end=end)
    return _grouped(db, q, ZoneInfo(timezone))


@dataclass(frozen=True)
class DailyQuery:
    """What ``daily_totals`` sums on every backend (``?`` parameters): the rows (model
    calls by the call's time with a model, else whole requests), their time and cost
    columns, the group key (None: one series) and the conditions. Backends differ only
    in how they turn ``ts`` into a local day."""

    source: str
    ts: str
    cost: str
    key: str | None
    where: str
    params: tuple[Any, ...]


def daily_query(*, by: str | None, user: str | None, model: str | None, timezone: str,
                start: date | None, end: date | None) -> DailyQuery:
    on_calls = by == "model" or model is not None
    source = "calls c JOIN requests r ON r.id = c.request_id" if on_calls else "requests r"
    ts, cost = ("c.ts", "c.cost_nusd") if on_calls else ("r.ts", "r.cost_nusd")
    key = ("c.model" if by == "model" else None) if on_calls else ("r.user" if by == "user" else None)
    clauses, params = _where(user=user, model=model)
    tz = ZoneInfo(timezone)
    if start is not None:
        clauses.append(f"{ts} >= ?")
        params.append(format_ts(local_midnight(start, tz)))
    if end is not None:
        clauses.append(f"{ts} < ?")
        params.append(format_ts(local_midnight(end + timedelta(days=1), tz)))
    return DailyQuery(source, ts, cost, key, " AND ".join(clauses) or "true", tuple(params))


def to_usd(series: Iterable[tuple[date, int]]) -> list[tuple[date, float]]:
    """A nano-dollar series as USD floats, for the analytics (which work in floats)."""
    from cascadeflow_cli.money import usd

    return [(day, usd(nanos)) for day, nanos in series]


# --- internals ----------------------------------------------------------------------


def _where(*, user: str | None = None, model: str | None = None) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if user is not None:
        clauses.append("r.user = ?")
        params.append(user)
    if model is not None:
        clauses.append("c.model = ?")
        params.append(model)
    return clauses, params


def _grouped(db: Database, q: DailyQuery, tz: ZoneInfo) -> dict[str | None, dict[date, int]]:
    """``{key: {local day: nano-dollars}}`` (key None when not grouping by a column)."""
    source, ts, cost, key, condition, params = q.source, q.ts, q.cost, q.key, q.where, list(q.params)
    span = db.execute(f"SELECT min({ts}), max({ts}) FROM {source} WHERE {condition}", params).fetchone()
    if span is None or span[0] is None:
        return {}
    shift_sql, shift_params = _offset_case(ts, tz, parse_ts(span[0]), parse_ts(span[1]))
    group = f"{key}, " if key else ""
    # whole seconds: SQLite rounds fractions to milliseconds, so 23:59:59.9999 would be
    # counted on the next day
    sql = (f"SELECT {group}date(substr({ts}, 1, 19), {shift_sql}) AS day, {money_sum_sql(cost)} "
           f"FROM {source} WHERE {condition} GROUP BY {group}day")
    out: dict[str | None, dict[date, int]] = {}
    for row in db.execute(sql, [*shift_params, *params]).fetchall():
        k, day, total = (row[0], row[1], row[2]) if key else (None, row[0], row[1])
        if day is None:
            continue  # a timestamp SQLite cannot read: not ours, skip it
        out.setdefault(k, {})[date.fromisoformat(day)] = nanos(total)
    return out


def _offset_case(ts: str, tz: ZoneInfo, first: datetime, last: datetime) -> tuple[str, list[Any]]:
    """A SQL expression giving the date() modifier ('+60 minutes') for each row's UTC
    offset, from the zone's transitions between ``first`` and ``last``."""
    stretches = offset_stretches(tz, first, last)
    if len(stretches) == 1:
        return "?", [_modifier(stretches[0][1])]
    parts, params = [], []
    for until, minutes in stretches[:-1]:
        parts.append(f"WHEN {ts} < ? THEN ?")
        params.extend([format_ts(until), _modifier(minutes)])
    params.append(_modifier(stretches[-1][1]))
    return f"CASE {' '.join(parts)} ELSE ? END", params


def _modifier(minutes: int) -> str:
    return f"{minutes:+d} minutes"


def offset_stretches(tz: ZoneInfo, first: datetime, last: datetime) -> list[tuple[datetime, int]]:
    """``[(end, offset minutes)]``: the zone's UTC offset from ``first`` up to each ``end``
    (exclusive; the last stretch runs past ``last``). Transitions are found by stepping a
    day at a time and bisecting to the second where the offset changes."""
    def offset(moment: datetime) -> int:
        delta = moment.astimezone(tz).utcoffset() or timedelta(0)
        return int(delta.total_seconds() // 60)

    first = first.astimezone(UTC)
    last = last.astimezone(UTC)
    stretches: list[tuple[datetime, int]] = []
    current = offset(first)
    moment = first
    step = timedelta(days=1)
    while moment < last:
        following = min(moment + step, last)
        if offset(following) != current:
            lo, hi = int(moment.timestamp()), math.ceil(following.timestamp())
            while hi - lo > 1:  # transitions fall on whole seconds
                mid = (lo + hi) // 2
                if offset(datetime.fromtimestamp(mid, UTC)) == current:
                    lo = mid
                else:
                    hi = mid
            change = datetime.fromtimestamp(hi, UTC)
            stretches.append((change, current))
            current = offset(change)
            moment = change
        else:
            moment = following
    stretches.append((last + timedelta(days=1), current))
    return stretches


def _fill(days: dict[date, int], start: date | None, end: date | None) -> Series:
    return zero_filled(days, 0, start, end)
