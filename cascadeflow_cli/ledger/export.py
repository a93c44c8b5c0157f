"""Streaming export of the ledger: one row per model call, as CSV, a JSON array or JSONL.

SQLite does the shaping (exact decimal money strings, true/false flags, even whole JSON
objects), and Python only moves rows from the cursor to the file, so a million rows
stream at C speed in constant memory. A request with no model call (blocked by its
budget) still gets one row, with the call columns empty, so nothing in the ledger is
left out.

Request-level amounts (``verifier_only_cost``, ``savings``) appear once per request, on
its first row, so summing a column in a spreadsheet gives the right total. The column
list is documented in ``docs/ledger-columns.md`` (a test keeps the two in step).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO

from cascadeflow_cli.ledger.schema import EXPORT_COLUMNS, ExportColumn
from cascadeflow_cli.ledger.sql import money_sql

FORMATS = ("csv", "json", "jsonl")


def _flag_sql(column: str) -> str:
    return f"CASE {column} WHEN 1 THEN 'true' WHEN 0 THEN 'false' END"


def _first_row_sql(expression: str) -> str:
    """Only on a request's first row (its seq-0 call, or its only row when it has none)."""
    return f"CASE WHEN c.seq = 0 OR c.id IS NULL THEN {expression} END"


@dataclass(frozen=True)
class Column:
    name: str
    sql: str  # a text-or-number expression, as it appears in CSV
    kind: str = "value"  # as in ledger/schema.py's ExportColumn


def _sql(column: ExportColumn) -> str:
    """SQLite's expression for one export column of ledger/schema.py."""
    sql = column.source if column.fallback is None else f"coalesce({column.source}, {column.fallback})"
    if column.kind == "money":
        sql = money_sql(sql)
    elif column.kind == "flag":
        sql = _flag_sql(sql)
    return _first_row_sql(sql) if column.once else sql


COLUMNS: tuple[Column, ...] = tuple(Column(c.name, _sql(c), c.kind) for c in EXPORT_COLUMNS)
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)


@dataclass(frozen=True)
class LedgerFilter:
    """Which requests a read covers. Times are ledger timestamps (UTC ISO text):
    ``since`` inclusive, ``until`` exclusive. ``model`` matches a call's model name or
    its provider id (then only that model's calls are exported)."""

    user: str | None = None
    since: str | None = None
    until: str | None = None
    model: str | None = None

    def where(self, requests: str = "r", calls: str | None = "c") -> tuple[str, list[str]]:
        """A SQL condition (``"true"`` when empty) and its ``?`` parameters, in SQL that
        SQLite and PostgreSQL both read (a qualified ``r.user`` needs no quoting there)."""
        parts: list[str] = []
        params: list[str] = []
        if self.user is not None:
            parts.append(f"{requests}.user = ?")
            params.append(self.user)
        if self.since is not None:
            parts.append(f"{requests}.ts >= ?")
            params.append(self.since)
        if self.until is not None:
            parts.append(f"{requests}.ts < ?")
            params.append(self.until)
        if self.model is not None and calls is not None:
            parts.append(f"({calls}.model = ? OR {calls}.model_id = ?)")
            params += [self.model, self.model]
        return (" AND ".join(parts) or "true"), params


def _json_value(column: Column) -> str:
    if column.kind in ("money", "flag", "json"):
        return f"json({column.sql})"
    return column.sql


# A CSV cell a spreadsheet runs as a formula starts with one of these (OWASP's list): a
# user named '=HYPERLINK(...)' or a query '=cmd|...' ran in whoever opened the export.
# Such a text cell gets a leading "'" (shown as text, not run), and so does one that
# starts with quotes before one of them, so that `import` takes exactly one off again.
FORMULA_LEADS = "=+-@\t\r"


def csv_defused(text: str) -> str:
    """A text cell as CSV export writes it (see FORMULA_LEADS); csv_restored undoes it."""
    lead = text.lstrip("'")[:1]
    return "'" + text if lead and lead in FORMULA_LEADS else text


def csv_restored(text: str) -> str:
    """A text cell of a CSV file as it was before csv_defused."""
    if text.startswith("'"):
        lead = text.lstrip("'")[:1]
        if lead and lead in FORMULA_LEADS:
            return text[1:]
    return text


def _defused_test_sql(x: str) -> str:
    """SQL true where csv_defused prefixes ``x``: one GLOB on the first character (a real
    tab and CR in the class; '-' last, so it is no range), the quotes trimmed only for a
    cell that starts with one."""
    first = "[" + FORMULA_LEADS.replace("-", "") + "''-]*"
    leads = "[" + FORMULA_LEADS.replace("-", "") + "-]*"
    return f"{x} GLOB '{first}' AND ltrim({x}, '''') GLOB '{leads}'"


def _csv_value(column: Column) -> str:
    """RFC 4180 quoting, done by SQLite: a text field holding a comma, a double quote or
    a line break (or a NUL character) is wrapped in double quotes, its quotes doubled. (One
    GLOB with a character class is the cheapest test SQLite offers; the class holds a real
    LF and CR.) A text field that would run as a formula is defused (FORMULA_LEADS) in
    the same CASE, so the usual cell is read as before (a nested CASE was evaluated once
    per mention: +16% CPU for the whole export)."""
    if column.kind not in ("text", "json"):
        return column.sql
    x = column.sql
    # GLOB reads a text only up to a NUL character; instr reads all of it
    needs_quotes = f"{x} GLOB '*[,\"\n\r]*' OR instr({x}, char(0))"
    quoted = f"replace({x}, '\"', '\"\"') || '\"'"
    apostrophe = "''''"  # the SQL text "'"
    defused = (f"WHEN {_defused_test_sql(x)} THEN CASE WHEN {needs_quotes} THEN '\"' || {apostrophe} || "
               f"{quoted} ELSE {apostrophe} || {x} END " if column.kind == "text" else "")
    return (f"CASE WHEN {x} IS NULL THEN NULL {defused}WHEN {needs_quotes} "
            f"THEN '\"' || {quoted} ELSE {x} END")


def export_sql(fmt: str, flt: LedgerFilter) -> tuple[str, list[str]]:
    """The SELECT for ``fmt``: one text value per row, a whole CSV line (without its line
    end) or a whole JSON object. NULL is an empty CSV field.

    Order: request time, then insertion order, then call order: the ``ts`` index walks
    it without a sort, and an import inserts in file order, so exporting an imported
    export reproduces the file.
    """
    if fmt == "csv":
        # concatenated, not printf('%s,%s,...'): printf stops a text at a NUL character (a
        # provider's answer may hold U+0000), which cut the field and left its quote open
        select = " || ',' || ".join(f"coalesce({_csv_value(c)}, '')" for c in COLUMNS)
    else:
        pairs = ", ".join(f"'{c.name}', {_json_value(c)}" for c in COLUMNS)
        select = f"json_object({pairs})"
    where, params = flt.where()
    sql = (f"SELECT {select} FROM requests r LEFT JOIN calls c ON c.request_id = r.id "
           f"WHERE {where} ORDER BY r.ts, r.rowid, c.seq")
    return sql, params


def iter_batches(conn: sqlite3.Connection, fmt: str, flt: LedgerFilter, size: int = 2000
                 ) -> Iterator[list[tuple[object, ...]]]:
    """Export rows in lists of ``size``, streamed from one read (a consistent snapshot)."""
    sql, params = export_sql(fmt, flt)
    cursor = conn.execute(sql, params)
    try:
        while batch := cursor.fetchmany(size):
            yield batch
    finally:
        cursor.close()


def write_export(conn: sqlite3.Connection, out: TextIO, fmt: str, flt: LedgerFilter | None = None
                 ) -> int:
    """Write the filtered ledger to ``out`` (opened with ``newline=""``); returns the row count."""
    batches = ([row[0] for row in batch] for batch in iter_batches(conn, fmt, flt or LedgerFilter()))
    return write_rows(batches, out, fmt)


def write_rows(batches: Iterable[list[str]], out: TextIO, fmt: str) -> int:
    """Write export rows (``LedgerStore.export_rows``) to ``out`` (opened with
    ``newline=""``); returns the row count.

    CSV: a header, RFC 4180 quoting, CRLF line ends. JSON: an array with one object a
    line. JSONL: one object a line. Costs are exact decimals (9 places) in every format.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    count = 0
    if fmt in ("csv", "jsonl"):
        end = "\r\n" if fmt == "csv" else "\n"
        if fmt == "csv":
            out.write(",".join(COLUMN_NAMES) + end)
        for batch in batches:
            out.write(end.join(batch) + end)
            count += len(batch)
        return count
    out.write("[")
    for batch in batches:
        out.write(("\n" if count == 0 else ",\n") + ",\n".join(batch))
        count += len(batch)
    out.write("\n]\n" if count else "]\n")
    return count
