"""Ledger history read back as records (what the engine wrote), oldest first, a page at a
time so a year of history never sits in memory: `cascade export --otlp` sends it."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import fields
from typing import Any

from cascadeflow_cli.ledger.export import LedgerFilter
from cascadeflow_cli.ledger.records import CallRecord, RequestRecord

_REQUEST_FIELDS = {f.name for f in fields(RequestRecord)} - {"calls"}
_CALL_FIELDS = {f.name for f in fields(CallRecord)}


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
            yield _request(row, calls.get(row["id"], []))
        after = (rows[-1]["ts"], rows[-1]["_rowid"])


def _calls(conn: sqlite3.Connection, ids: list[str]) -> dict[str, list[CallRecord]]:
    marks = ",".join("?" * len(ids))
    cur = conn.execute(f"SELECT * FROM calls WHERE request_id IN ({marks}) ORDER BY request_id, seq", ids)
    names = [d[0] for d in cur.description]
    out: dict[str, list[CallRecord]] = {}
    for values in cur.fetchall():
        row = dict(zip(names, values, strict=True))
        out.setdefault(row["request_id"], []).append(_call(row))
    return out


def _reasons(text: Any) -> tuple[str, ...]:
    try:
        value = json.loads(text) if text else []
    except ValueError:
        return ()
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _call(row: dict[str, Any]) -> CallRecord:
    data = {k: v for k, v in row.items() if k in _CALL_FIELDS}
    data["quality_reasons"] = _reasons(row.get("quality_reasons"))
    data["accepted"] = None if row.get("accepted") is None else bool(row["accepted"])
    for name in ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens"):
        data[name] = data.get(name) or 0
    data["latency_ms"] = data.get("latency_ms") or 0.0
    data["attempts"] = data.get("attempts") or 1
    data["cost_source"] = data.get("cost_source") or "config"
    return CallRecord(**data)


def _request(row: dict[str, Any], calls: list[CallRecord]) -> RequestRecord:
    data = {k: v for k, v in row.items() if k in _REQUEST_FIELDS}
    data["quality_reasons"] = _reasons(row.get("quality_reasons"))
    data["draft_accepted"] = bool(row.get("draft_accepted"))
    data["escalated"] = bool(row.get("escalated"))
    data["calibrated"] = bool(row.get("calibrated"))
    for name in ("verifier_only_cost_nusd", "savings_nusd"):
        data[name] = data.get(name) or 0
    data["latency_ms"] = data.get("latency_ms") or 0.0
    data["enforcement"] = data.get("enforcement") or "allow"
    return RequestRecord(**data, calls=tuple(calls))
