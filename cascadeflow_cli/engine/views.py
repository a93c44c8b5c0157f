"""Ledger rows back into the result objects, so `logs --json` has exactly the shape
of `ask --json` (one way to shape a result)."""

from __future__ import annotations

import json
from typing import Any

from cascadeflow_cli.engine.cascade import CallResult, CascadeResult


def _reasons(raw: str | None) -> tuple[str, ...]:
    return tuple(json.loads(raw)) if raw else ()


def _flag(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def result_from_row(row: dict[str, Any]) -> CascadeResult:
    calls = tuple(
        CallResult(
            model=c["model"],
            role=c["role"],
            input_tokens=c["input_tokens"] or 0,
            output_tokens=c["output_tokens"] or 0,
            cost_nusd=c["cost_nusd"],
            latency_ms=c["latency_ms"] or 0.0,
            quality_score=c["quality_score"],
            accepted=_flag(c["accepted"]),
            status=c["status"],
            error=c["error"],
            quality_reasons=_reasons(c["quality_reasons"]),
        )
        for c in row.get("calls", [])
    )
    return CascadeResult(
        request_id=row["id"],
        user=row["user"],
        answer=row["answer"] or "",
        model=row["model"] or "",
        draft_model=row["draft_model"] or "",
        draft_accepted=bool(row["draft_accepted"]),
        escalated=bool(row["escalated"]),
        quality_score=row["quality_score"],
        quality_reasons=_reasons(row["quality_reasons"]),
        cost_nusd=row["cost_nusd"],
        verifier_only_cost_nusd=row["verifier_only_cost_nusd"] or 0,
        latency_ms=row["latency_ms"] or 0.0,
        calls=calls,
        domain=row["domain"],
        domain_confidence=row["domain_confidence"],
        enforcement=row["enforcement"] or "allow",
        enforcement_message=row["enforcement_message"],
        quality_threshold=row.get("quality_threshold"),
        calibrated=bool(row.get("calibrated")),
    )


def request_json(row: dict[str, Any]) -> dict[str, Any]:
    """A ledger request (with its calls) as the `ask --json` object plus its timestamp,
    status, query and error."""
    data = result_from_row(row).to_json()
    if row["status"] != "ok":
        data["savings"] = 0.0
    data.update(timestamp=row["ts"], status=row["status"], query=row["query"], error=row["error"])
    return data
