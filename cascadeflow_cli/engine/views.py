"""Ledger rows back into the result objects, so `logs --json` has exactly the shape
of `ask --json` (one way to shape a result)."""

from __future__ import annotations

from typing import Any

from cascadeflow_cli.engine.cascade import CallResult, CascadeResult
from cascadeflow_cli.ledger.schema import request_from_row


def result_from_row(row: dict[str, Any]) -> CascadeResult:
    """A request row with its ``calls`` rows (ledger/schema.py reads them back)."""
    r = request_from_row(row, row.get("calls", []))
    calls = tuple(
        CallResult(
            model=c.model, role=c.role, input_tokens=c.input_tokens, output_tokens=c.output_tokens,
            cost_nusd=c.cost_nusd, latency_ms=c.latency_ms, quality_score=c.quality_score,
            accepted=c.accepted, status=c.status, error=c.error, quality_reasons=c.quality_reasons,
        )
        for c in r.calls
    )
    return CascadeResult(
        request_id=r.id, user=r.user, answer=r.answer or "", model=r.model or "",
        draft_model=r.draft_model or "", draft_accepted=r.draft_accepted, escalated=r.escalated,
        quality_score=r.quality_score, quality_reasons=r.quality_reasons, cost_nusd=r.cost_nusd,
        verifier_only_cost_nusd=r.verifier_only_cost_nusd, latency_ms=r.latency_ms, calls=calls,
        domain=r.domain, domain_confidence=r.domain_confidence, enforcement=r.enforcement,
        enforcement_message=r.enforcement_message, quality_threshold=r.quality_threshold,
        calibrated=r.calibrated,
    )


def request_json(row: dict[str, Any]) -> dict[str, Any]:
    """A ledger request (with its calls) as the `ask --json` object plus its timestamp,
    status, query and error."""
    data = result_from_row(row).to_json()
    if row["status"] != "ok":
        data["savings"] = 0.0
    data.update(timestamp=row["ts"], status=row["status"], query=row["query"], error=row["error"])
    return data
