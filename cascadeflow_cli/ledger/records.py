"""What one ledger row holds. The engine builds these; the ledger stores them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cascadeflow_cli.ledger.labels import CallSignals


@dataclass(frozen=True)
class CallRecord:
    """One model call (draft or verifier), successful or not."""

    id: str
    request_id: str
    ts: str
    seq: int
    role: str  # "draft" | "verifier"
    model: str  # our name for it
    model_id: str  # litellm's id
    provider: str
    status: str  # "ok" | "error"
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nusd: int = 0
    cost_source: str = "config"
    latency_ms: float = 0.0
    attempts: int = 1
    finish_reason: str | None = None
    quality_score: float | None = None
    quality_reasons: tuple[str, ...] = ()
    accepted: bool | None = None
    answer: str | None = None
    error: str | None = None
    # what OpenTelemetry's GenAI spans want and the calls above do not say (migration 004)
    response_id: str | None = None
    response_model: str | None = None
    max_tokens: int | None = None
    error_type: str | None = None  # the exception's class name, low-cardinality


@dataclass(frozen=True)
class RequestRecord:
    """One user query and what the cascade made of it."""

    id: str
    ts: str
    user: str
    status: str  # "ok" | "error" | "interrupted"
    query: str | None
    answer: str | None
    domain: str | None = None
    domain_confidence: float | None = None
    model: str | None = None
    draft_model: str | None = None
    draft_accepted: bool = False
    escalated: bool = False
    quality_score: float | None = None
    quality_reasons: tuple[str, ...] = ()
    cost_nusd: int = 0
    verifier_only_cost_nusd: int = 0
    savings_nusd: int = 0
    enforcement: str = "allow"
    enforcement_message: str | None = None
    latency_ms: float = 0.0
    error: str | None = None
    calls: tuple[CallRecord, ...] = field(default=())
    external_id: str | None = None  # "<batch id>:<row id>" for `cascade batch` rows
    quality_threshold: float | None = None  # what quality_score was compared with
    calibrated: bool = False  # quality_score is a calibrated probability
    signals: tuple[CallSignals, ...] = ()  # live signals of draft calls (not a requests column)
