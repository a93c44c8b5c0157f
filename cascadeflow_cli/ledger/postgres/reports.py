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
from datetime import date
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.ledger import schema
from cascadeflow_cli.ledger.export import csv_defused
from cascadeflow_cli.ledger.postgres.ddl import TIMESTAMPS, q
from cascadeflow_cli.ledger.storage import Dialect
from cascadeflow_cli.ledger.usage import UsageReport, UsageSql, usage_report

if TYPE_CHECKING:
    import psycopg

    from cascadeflow_cli.ledger.export import LedgerFilter


POSTGRES = Dialect("postgresql", "%s")


def where(flt: LedgerFilter | None, *, calls: bool = False) -> tuple[str, list[Any]]:
    """``flt`` as a condition on ``r`` (and ``c`` for the model filter): the shared
    LedgerFilter.where in psycopg's parameter style."""
    from cascadeflow_cli.ledger.export import LedgerFilter

    cond, params = (flt or LedgerFilter()).where("r", "c" if calls else None)
    return POSTGRES.sql(cond), list(params)


# timestamptz as ledger text (clock.format_ts), rendered by the server: for bulk reads,
# where parsing each into a datetime and formatting it again cost more than the query
LEDGER_TEXT = "to_char({} at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"


def columns_sql(table: schema.Table, alias: str) -> str:
    """Every column of ``table`` (prefixed ``alias.``), its timestamps as ledger text."""
    return ", ".join(f"{LEDGER_TEXT.format(f'{alias}.{q(c)}')} as {q(c)}" if (table.name, c) in TIMESTAMPS
                     else f"{alias}.{q(c)}" for c in table.names)


def iter_records(conn: psycopg.Connection[Any], flt: LedgerFilter | None, page: int = 500
                 ) -> Iterator[schema.RequestRecord]:
    """Every request the filter selects, oldest first (ties by id), with its calls: one
    server-side cursor over one snapshot (a page query per page would sort again each
    time: there is no (ts, id) index), the calls fetched a page at a time beside it."""
    from psycopg import IsolationLevel
    from psycopg.rows import dict_row

    cond, params = where(flt)
    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    with conn.transaction(), conn.cursor(name="cascade_records", row_factory=dict_row) as cur:
        cur.itersize = page
        cur.execute(f"select {columns_sql(schema.REQUESTS, 'r')} from requests r where {cond} "  # type: ignore[arg-type]
                    "order by r.ts, r.id", params)
        while rows := cur.fetchmany(page):
            calls: dict[str, list[dict[str, Any]]] = {}
            with conn.cursor(row_factory=dict_row) as side:
                for call in side.execute(f"select {columns_sql(schema.CALLS, 'c')} from calls c "  # type: ignore[arg-type]
                                         "where c.request_id = any(%s) order by c.request_id, c.seq",
                                         [[r["id"] for r in rows]]):
                    calls.setdefault(call["request_id"], []).append(call)
            for row in rows:
                yield schema.request_from_row(row, calls.get(row["id"], []))


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
    text = csv_defused(str(value)) if column.kind == "text" else str(value)
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
    """As the storage interface's ``daily_totals``: spend.daily_query's rows, summed per
    local day by the server (``ts AT TIME ZONE zone``, which knows every transition)."""
    from cascadeflow_cli.ledger.spend import daily_query

    dq = daily_query(by=by, user=user, model=model, timezone=timezone, start=start, end=end)
    sql = (f"select {dq.key or 'null'}::text, ({dq.ts} at time zone %s)::date as day, sum({dq.cost}) "
           f"from {dq.source} where {POSTGRES.sql(dq.where)} group by 1, 2")
    out: dict[str | None, dict[date, int]] = {}
    for k, day, total in conn.execute(sql, [timezone, *dq.params]).fetchall():  # type: ignore[arg-type]
        out.setdefault(k if by else None, {})[day] = int(total)
    return out


# --- usage -------------------------------------------------------------------------------

# the queries are usage.py's; what PostgreSQL spells its own way
PG_USAGE = UsageSql(
    day_slot="to_char(to_timestamp(floor(extract(epoch from r.ts) / 900) * 900) at time zone 'UTC', "
             "'YYYY-MM-DD\"T\"HH24:MI')",
    money_sum=lambda column: f"sum({column})",  # numeric: exact at any size
    count_if=lambda condition: f"sum(({condition})::int)",
)


def usage(conn: psycopg.Connection[Any], flt: LedgerFilter | None, by: str | None, timezone: str
          ) -> UsageReport:
    """`cascade usage`: ledger/usage.py's queries, run here."""
    return usage_report(lambda sql, params: conn.execute(POSTGRES.sql(sql), params).fetchall(),  # type: ignore[arg-type]
                        PG_USAGE, flt, by, timezone)
