"""What a cascade run returns: views over the ledger records it wrote (ledger/schema.py),
so `ask --json` and `logs --json` (engine/views.py) are one shape from one source."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cascadeflow_cli.ledger.schema import CallRecord, RequestRecord, savings
from cascadeflow_cli.money import usd


@dataclass(frozen=True)
class CallResult:
    """One model call of a result: its ledger record."""

    record: CallRecord

    def __getattr__(self, name: str) -> Any:  # model, role, tokens, cost, latency, quality...
        if name == "record":
            raise AttributeError(name)
        return getattr(self.record, name)

    def to_json(self) -> dict[str, Any]:
        c = self.record
        return {
            "model": c.model,
            "role": c.role,
            "input_tokens": c.input_tokens,
            "output_tokens": c.output_tokens,
            "cost": usd(c.cost_nusd),
            "latency_ms": round(c.latency_ms, 1),
            "quality_score": c.quality_score,
            "accepted": c.accepted,
            "quality_reasons": list(c.quality_reasons),
            "status": c.status,
            "error": c.error,
        }


@dataclass(frozen=True)
class CascadeResult:
    """A request's result: its ledger record, plus the answer (which the record holds only
    when ``store_prompts`` is on)."""

    record: RequestRecord
    answer: str

    @property
    def request_id(self) -> str:
        return self.record.id

    @property
    def model(self) -> str:
        return self.record.model or ""

    @property
    def draft_model(self) -> str:
        return self.record.draft_model or ""

    @property
    def calls(self) -> tuple[CallResult, ...]:
        return tuple(CallResult(c) for c in self.record.calls)

    @property
    def savings_nusd(self) -> int:
        """Positive when cheaper than the last model alone; negative when a draft was
        paid for and then thrown away."""
        return savings(self.record.verifier_only_cost_nusd, self.record.cost_nusd)

    def __getattr__(self, name: str) -> Any:  # user, domain, draft_accepted, escalated, costs...
        if name in ("record", "answer"):
            raise AttributeError(name)
        return getattr(self.record, name)

    def to_json(self) -> dict[str, Any]:
        """The `cascade ask --json` object of CLI.md."""
        r = self.record
        return {
            "request_id": r.id,
            "user": r.user,
            "domain": r.domain,
            "domain_confidence": r.domain_confidence,
            "answer": self.answer,
            "model": self.model,
            "draft_model": self.draft_model,
            "draft_accepted": r.draft_accepted,
            "escalated": r.escalated,
            "quality_score": r.quality_score,
            "quality_reasons": list(r.quality_reasons),
            "cost": usd(r.cost_nusd),
            "verifier_only_cost": usd(r.verifier_only_cost_nusd),
            "savings": usd(self.savings_nusd),
            "enforcement": r.enforcement,
            "enforcement_message": r.enforcement_message,
            "latency_ms": round(r.latency_ms, 1),
            "calls": [c.to_json() for c in self.calls],
            "quality_threshold": r.quality_threshold,
            "calibrated": r.calibrated,
        }
