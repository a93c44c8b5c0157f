"""Ledger rows back into the result objects, so `logs --json` has exactly the shape
of `ask --json` (one way to shape a result)."""

from __future__ import annotations

from typing import Any

from cascadeflow_cli.engine.results import CascadeResult
from cascadeflow_cli.ledger.schema import request_from_row


def result_from_row(row: dict[str, Any]) -> CascadeResult:
    """A request row with its ``calls`` rows (ledger/schema.py reads them back)."""
    record = request_from_row(row, row.get("calls", []))
    return CascadeResult(record, record.answer or "")


def request_json(row: dict[str, Any]) -> dict[str, Any]:
    """A ledger request (with its calls) as the `ask --json` object plus its timestamp,
    status, query and error."""
    data = result_from_row(row).to_json()
    if row["status"] != "ok":
        data["savings"] = 0.0
    data.update(timestamp=row["ts"], status=row["status"], query=row["query"], error=row["error"])
    return data
