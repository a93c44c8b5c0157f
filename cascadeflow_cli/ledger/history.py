"""Ledger history read back as records (what the engine wrote), oldest first, a page at a
time so a year of history never sits in memory: `cascade export --otlp` sends it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from cascadeflow_cli.ledger.export import LedgerFilter
from cascadeflow_cli.ledger.schema import CallRecord, RequestRecord, call_from_row, request_from_row


def iter_records(
    conn: sqlite3.Connection, flt: LedgerFilter | None = None, page: int = 500
) -> Iterator[RequestRecord]:
    """Every request the filter selects (``model`` is ignored: a request goes whole),
    with its calls in order."""
    where, params = (flt or LedgerFilter()).where("r", None)
    after: tuple[str, int] = ("", -1)
    while True:
        cur = conn.execute(
            f"SELECT r.rowid AS _rowid, r.* FROM requests r WHERE {where} AND (r.ts, r.rowid) > (?, ?) "
            f"ORDER BY r.ts, r.rowid LIMIT {int(page)}",
            [*params, *after],
        )
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, values, strict=True)) for values in cur.fetchall()]
        if not rows:
            return
        calls = _calls(conn, [r["id"] for r in rows])
        for row in rows:
            yield request_from_row(row, calls.get(row["id"], []))
        after = (rows[-1]["ts"], rows[-1]["_rowid"])


def _calls(conn: sqlite3.Connection, ids: list[str]) -> dict[str, list[CallRecord]]:
    marks = ",".join("?" * len(ids))
    cur = conn.execute(f"SELECT * FROM calls WHERE request_id IN ({marks}) ORDER BY request_id, seq", ids)
    names = [d[0] for d in cur.description]
    out: dict[str, list[CallRecord]] = {}
    for values in cur.fetchall():
        row = dict(zip(names, values, strict=True))
        out.setdefault(row["request_id"], []).append(call_from_row(row))
    return out
