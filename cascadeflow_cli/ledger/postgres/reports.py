"""Reading a PostgreSQL ledger for the reports: history as records, `cascade export`'s rows,
spend per local day, and `cascade usage`.

Export rows are rendered in Python from the one column list (ledger/schema.py's
EXPORT_COLUMNS) so that they come out byte for byte as SQLite renders them in SQL (money
as exact 9-place decimals, flags true/false, REALs to 15 significant digits, compact
JSON): `cascade ledger copy` between backends then exports identically. Days are computed
by the server (``ts AT TIME ZONE zone``), which knows every zone's transitions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from cascadeflow_cli.clock import format_ts
from cascadeflow_cli.ledger import schema
from cascadeflow_cli.windows import local_midnight

if TYPE_CHECKING:
    import psycopg

    from cascadeflow_cli.ledger.export import LedgerFilter


def where(flt: LedgerFilter | None, *, calls: bool = False) -> tuple[str, list[Any]]:
    """``flt`` as a PostgreSQL condition on ``r`` (and ``c`` for the model filter)."""
    parts: list[str] = []
    params: list[Any] = []
    if flt is not None:
        if flt.user is not None:
            parts.append('r."user" = %s')
            params.append(flt.user)
        if flt.since is not None:
            parts.append("r.ts >= %s")
            params.append(flt.since)
        if flt.until is not None:
            parts.append("r.ts < %s")
            params.append(flt.until)
        if flt.model is not None and calls:
            parts.append("(c.model = %s or c.model_id = %s)")
            params += [flt.model, flt.model]
    return " and ".join(parts) or "true", params


def iter_records(conn: psycopg.Connection[Any], flt: LedgerFilter | None, page: int = 500
                 ) -> Iterator[schema.RequestRecord]:
    """Every request the filter selects, oldest first (ties by id), with its calls."""
    from psycopg.rows import dict_row

    cond, params = where(flt)
    after: tuple[Any, str] | None = None
    while True:
        keyset = "and (r.ts, r.id) > (%s, %s)" if after else ""
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(f"select r.* from requests r where {cond} {keyset} order by r.ts, r.id "
                               f"limit {int(page)}", [*params, *(after or ())]).fetchall()
            if not rows:
                return
            calls: dict[str, list[dict[str, Any]]] = {}
            for call in cur.execute("select * from calls where request_id = any(%s) order by request_id, seq",
                                    [[r["id"] for r in rows]]).fetchall():
                calls.setdefault(call["request_id"], []).append(call)
        for row in rows:
            yield schema.request_from_row(row, calls.get(row["id"], []))
        after = (rows[-1]["ts"], rows[-1]["id"])


# --- export ------------------------------------------------------------------------------


def money_text(nanos: int) -> str:
    """Nano-dollars as an exact 9-place USD decimal ("-0.000123450"), as export.money_sql."""
    sign = "-" if nanos < 0 else ""
    return f"{sign}{abs(nanos) // 10**9}.{abs(nanos) % 10**9:09d}"


def real_text(value: float) -> str:
    """A float as SQLite prints a REAL (``%!.15g``): 15 significant digits, always a point."""
    if value == 0:
        return "0.0"
    if not math.isfinite(value):
        return "Inf" if value > 0 else ("-Inf" if value < 0 else "NaN")
    text = f"{value:.15g}"
    mantissa, e, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + (e + exponent if e else "")


def _value(column: schema.ExportColumn, row: dict[str, Any]) -> Any:
    value = row[column.source.replace(".", "_", 1)]
    if value is None and column.fallback is not None:
        value = row[column.fallback.replace(".", "_", 1)]
    if column.once and not (row["c_seq"] == 0 or row["c_id"] is None):
        return None
    return value


def _csv_field(column: schema.ExportColumn, value: Any) -> str:
    if value is None:
        return ""
    if column.kind == "money":
        return money_text(int(value))
    if column.kind == "flag":
        return "true" if value == 1 else ("false" if value == 0 else "")
    if isinstance(value, float):
        return real_text(value)
    text = str(value)
    if column.kind in ("text", "json") and any(ch in text for ch in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _json_field(column: schema.ExportColumn, value: Any) -> str:
    if value is None:
        return "null"
    if column.kind == "money":
        return money_text(int(value))
    if column.kind == "flag":
        return "true" if value == 1 else ("false" if value == 0 else "null")
    if column.kind == "json":
        try:
            return json.dumps(json.loads(value), separators=(",", ":"), ensure_ascii=False)
        except ValueError:
            return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return real_text(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def export_rows(conn: psycopg.Connection[Any], fmt: str, flt: LedgerFilter, size: int = 2000
                ) -> Iterator[list[str]]:
    """`cascade export`'s rows as SQLite renders them, streamed by a server-side cursor
    inside one REPEATABLE READ transaction (one consistent snapshot)."""
    from psycopg import IsolationLevel
    from psycopg.rows import dict_row

    needed = sorted({c.source for c in schema.EXPORT_COLUMNS} | {c.fallback for c in schema.EXPORT_COLUMNS
                                                               if c.fallback} | {"c.seq", "c.id"})
    select = ", ".join(f'{s[:2]}"{s[2:]}" as {s.replace(".", "_", 1)}' for s in needed)
    cond, params = where(flt, calls=True)
    sql = (f"select {select} from requests r left join calls c on c.request_id = r.id where {cond} "
           "order by r.ts, r.id, c.seq")
    render = _csv_field if fmt == "csv" else _json_field
    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    try:
        with conn.transaction(), conn.cursor(name="cascade_export", row_factory=dict_row) as cur:
            cur.itersize = size
            cur.execute(sql, params)  # type: ignore[arg-type]
            while batch := cur.fetchmany(size):
                out = []
                for row in batch:
                    values = [render(c, _value(c, row)) for c in schema.EXPORT_COLUMNS]
                    if fmt == "csv":
                        out.append(",".join(values))
                    else:
                        pairs = zip(schema.EXPORT_COLUMNS, values, strict=True)
                        out.append("{" + ",".join(f'"{c.name}":{v}' for c, v in pairs) + "}")
                yield out
    finally:
        conn.isolation_level = None


# --- spend per local day -------------------------------------------------------------------


def daily_totals(conn: psycopg.Connection[Any], *, by: str | None, user: str | None, model: str | None,
                 timezone: str, start: date | None, end: date | None) -> dict[str | None, dict[date, int]]:
    """As the storage interface's ``daily_totals``: requests (or, with ``model`` or
    ``by="model"``, model calls by the call's time) summed per local day of ``timezone``."""
    tz = ZoneInfo(timezone)
    on_calls = by == "model" or model is not None
    source = "calls c join requests r on r.id = c.request_id" if on_calls else "requests r"
    ts, cost = ("c.ts", "c.cost_nusd") if on_calls else ("r.ts", "r.cost_nusd")
    key = {"user": 'r."user"', "model": "c.model"}.get(by or "", "null")
    clauses, params = [], []
    if user is not None:
        clauses.append('r."user" = %s')
        params.append(user)
    if model is not None:
        clauses.append("c.model = %s")
        params.append(model)
    if start is not None:
        clauses.append(f"{ts} >= %s")
        params.append(format_ts(local_midnight(start, tz)))
    if end is not None:
        clauses.append(f"{ts} < %s")
        params.append(format_ts(local_midnight(end + timedelta(days=1), tz)))
    sql = (f"select {key}::text, ({ts} at time zone %s)::date as day, sum({cost}) from {source} "
           f"where {' and '.join(clauses) or 'true'} group by 1, 2")
    out: dict[str | None, dict[date, int]] = {}
    for k, day, total in conn.execute(sql, [timezone, *params]).fetchall():  # type: ignore[arg-type]
        out.setdefault(k if by else None, {})[day] = int(total)
    return out


# --- usage -------------------------------------------------------------------------------

_SLOT = "to_char(" + "to_timestamp(floor(extract(epoch from r.ts) / 900) * 900) at time zone 'UTC', " \
        "'YYYY-MM-DD\"T\"HH24:MI')"
_REQUEST_KEYS = {"total": "''", "user": 'r."user"', "domain": "r.domain", "day": _SLOT}
_CALL_KEYS = {"model": "c.model", "provider": "c.provider"}
_LABELS = ("select request_id, coalesce(max(case when source = 'feedback' then correct end), "
           "max(case when source = 'shadow' then correct end)) as correct from quality_labels "
           "group by request_id")


def _n(value: Any) -> int:
    return int(value or 0)


def usage(conn: psycopg.Connection[Any], flt: LedgerFilter | None, by: str | None, timezone: str) -> Any:
    """`cascade usage` as ledger/usage.py computes it on SQLite, in PostgreSQL's SQL."""
    from dataclasses import replace

    from cascadeflow_cli.ledger.export import LedgerFilter
    from cascadeflow_cli.ledger.usage import GROUPINGS, UsageReport, UsageRow, _fold_days

    if by is not None and by not in GROUPINGS:
        raise ValueError(f"unknown grouping {by!r}")
    flt = replace(flt or LedgerFilter(), model=None)
    cond, params = where(flt)

    def request_level(key_name: str) -> dict[Any, Any]:
        key = _REQUEST_KEYS[key_name]
        per_request = conn.execute(
            f"select {key} as k, count(*), sum(r.cost_nusd), sum(r.savings_nusd), "
            f"sum(r.verifier_only_cost_nusd), "
            f"sum(r.draft_accepted), sum((r.status != 'ok')::int) from requests r where {cond} group by 1",
            params).fetchall()  # type: ignore[arg-type]
        per_call = {row[0]: row for row in conn.execute(
            f"select {key} as k, count(c.id), sum(c.input_tokens), sum(c.output_tokens), "
            f"sum((c.seq = 0 and c.role = 'draft')::int) from requests r join calls c on c.request_id = r.id "
            f"where {cond} group by 1", params).fetchall()}  # type: ignore[arg-type]
        out = {}
        for k, requests, cost, savings, baseline, accepted, errors in per_request:
            _, n_calls, tokens_in, tokens_out, drafts = per_call.get(k, (k, 0, 0, 0, 0))
            out[k] = UsageRow(k, requests, _n(n_calls), _n(cost), _n(tokens_in), _n(tokens_out), _n(drafts),
                              _n(accepted), _n(savings), _n(baseline), _n(errors))
        return out

    def call_level(key_name: str) -> dict[Any, Any]:
        key = _CALL_KEYS[key_name]
        credited = {row[0]: row for row in conn.execute(
            f"select {key} as k, sum(r.savings_nusd), sum(r.verifier_only_cost_nusd) from requests r "
            f"join calls c on c.request_id = r.id and c.seq = 0 where {cond} group by 1",
            params).fetchall()}  # type: ignore[arg-type]
        out = {}
        for k, requests, n_calls, cost, t_in, t_out, drafts, accepted, errors in conn.execute(
                f"select {key} as k, count(distinct c.request_id), count(*), sum(c.cost_nusd), "
                f"sum(c.input_tokens), sum(c.output_tokens), sum((c.role = 'draft')::int), "
                f"sum((c.role = 'draft' and c.accepted = 1)::int), sum((c.status != 'ok')::int) "
                f"from requests r join calls c on c.request_id = r.id where {cond} group by 1",
                params).fetchall():  # type: ignore[arg-type]
            _, saved, baseline = credited.get(k, (k, 0, 0))
            out[k] = UsageRow(k, requests, n_calls, _n(cost), _n(t_in), _n(t_out), _n(drafts), _n(accepted),
                              _n(saved), _n(baseline), _n(errors))
        return out

    def with_labels(rows: dict[Any, Any], key_name: str) -> dict[Any, Any]:
        key = _CALL_KEYS.get(key_name) or _REQUEST_KEYS[key_name]
        join = "join calls c on c.request_id = r.id and c.seq = 0" if key_name in _CALL_KEYS else ""
        for k, n, good in conn.execute(
                f"select {key} as k, count(*), sum(l.correct) from requests r join ({_LABELS}) l "
                f"on l.request_id = r.id {join} where {cond} and r.draft_accepted = 1 "
                f"and l.correct is not null group by 1", params).fetchall():  # type: ignore[arg-type]
            if k in rows:
                rows[k] = replace(rows[k], labelled=_n(n), labelled_good=_n(good))
        return rows

    total = replace(with_labels(request_level("total"), "total").get("", UsageRow(None)), key=None)
    if by is None:
        return UsageReport(None, total, ())
    if by in _CALL_KEYS:
        groups = list(with_labels(call_level(by), by).values())
    else:
        found = with_labels(request_level(by), by)
        groups = list(_fold_days(found.values(), timezone) if by == "day" else found.values())
    if by == "day":
        groups.sort(key=lambda g: g.key or "")
    else:
        groups.sort(key=lambda g: (-g.cost_nusd, -g.requests, g.key is None, g.key or ""))
    return UsageReport(by, total, tuple(groups))
