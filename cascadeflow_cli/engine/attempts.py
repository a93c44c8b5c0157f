"""What the cascade learns about one query while it runs (the request in flight and one
attempt per model call), and the ledger's call rows built from it.

A call is *in flight* from the moment it is about to be sent until it answers or fails.
The cascade journals the request ahead of every call (engine/cascade.py), so a process
that dies meanwhile (kill -9, the OOM killer, a closed terminal) still leaves it in the
side journal, and the next command records it: the call the provider may bill is then
charged an estimate (``in_flight_charge``), never $0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cascadeflow_cli.config import ModelConfig
from cascadeflow_cli.engine.pricing import Price, Usage, cost_nanos, estimate_tokens, infer_provider
from cascadeflow_cli.engine.providers import Completion
from cascadeflow_cli.engine.providers.cancel import Cancellation
from cascadeflow_cli.engine.providers.stream import StreamSink
from cascadeflow_cli.errors import ProviderError
from cascadeflow_cli.ledger.enforcement import Decision
from cascadeflow_cli.ledger.journal import plain_call
from cascadeflow_cli.ledger.schema import CallRecord
from cascadeflow_cli.quality import QualityResult
from cascadeflow_cli.redact import redact

# A call that was sent and never answered (the process ended, or the user interrupted
# it): a provider bills a request it received even when its client has gone, and for a
# whole answer goes on writing it, so the call is charged its worst case, the prompt
# (counted from the text) plus every token it may write: what its budget
# reservation held at most (it counts the prompt more generously: engine/costs.py), so
# the recorded row takes the reservation's place without the spend jumping up.
IN_FLIGHT = "in flight when the request ended: cost estimated (prompt + max_tokens)"
IN_FLIGHT_SOURCE = "+in-flight"  # appended to the price's source (docs/ledger-columns.md)
IN_FLIGHT_TYPE = "CallInFlight"  # the call's error_type
# A try that was sent and failed without an answer to price (a timeout, a connection
# broken mid-answer, a 200 that is no chat completion: ProviderError.sent), the call's
# last or an earlier one a retry followed: the provider may have it and bill it (a
# client that stops waiting does not stop the generation), so each is charged the same
# estimate as a call in flight, added to the call's row and marked so. A connection
# never made and an error status (4xx, 5xx: providers bill neither) cost nothing.
UNANSWERED_SOURCE = "+estimated-unanswered"  # appended to the row's source (docs/ledger-columns.md)


@dataclass
class Attempt:
    """What the loop learnt from one model, before it becomes ledger and result rows."""

    model: ModelConfig
    role: str
    price: Price
    completion: Completion | None = None
    quality: QualityResult | None = None
    accepted: bool | None = None
    cost_nusd: int = 0
    cost_source: str = "config"
    error: ProviderError | None = None
    usage: Usage = field(default_factory=Usage)
    max_tokens: int | None = None
    logprobs: tuple[float, ...] | None = None  # live signals of a draft (issue 9)
    samples: int | None = None
    agreement: float | None = None
    choices: int = 1  # answers in this one call (`n`): its usage counts all of them
    # output tokens to charge while the call is in flight (None: not sent, or it has an
    # outcome); a stream cascade itself closed before any token came writes no more: 0
    in_flight_output: int | None = None

    @property
    def in_flight(self) -> bool:
        return self.in_flight_output is not None and self.completion is None and self.error is None


@dataclass
class PendingRequest:
    """One query in flight: what every ledger write about it needs."""

    id: str
    user: str
    query: str
    domain: str | None
    domain_confidence: float | None
    external_id: str | None
    started_at: datetime
    started: float  # perf_counter, for latency
    attempts: list[Attempt] = field(default_factory=list)
    decision: Decision | None = None
    messages: list[dict[str, str]] = field(default_factory=list)
    max_tokens: int = 0
    stop: tuple[str, ...] = ()  # the client's stop sequences, sent to every model
    journaled: bool = False  # an entry was written ahead to the side journal
    sink: StreamSink | None = None  # the final model's answer streams into it (streaming.py)
    cancel: Cancellation | None = None  # its caller may leave (the sink, when streaming)
    prompt_tokens: int | None = None  # the prompt's estimate, for a call in flight (counted once)
    head: dict[str, object] | None = None  # its columns for a call in flight's line (built once)

    def prompt_estimate(self) -> int:
        if self.prompt_tokens is None:
            self.prompt_tokens = prompt_tokens(self.messages)
        return self.prompt_tokens


def prompt_tokens(messages: list[dict[str, str]]) -> int:
    """The prompt's tokens, counted from its text as ``charge`` counts them."""
    return sum(estimate_tokens(m["content"]) for m in messages)


def in_flight_charge(price: Price, prompt: int, output_tokens: int) -> tuple[Usage, int, str]:
    """What a call in flight is charged: its usage (estimated), cost in nano-USD, source."""
    usage = Usage(prompt, output_tokens)
    return usage, cost_nanos(price, usage), price.source + IN_FLIGHT_SOURCE


def unanswered(a: Attempt) -> int:
    """The tries of ``a``'s call that were sent and got no answer (each may be billed)."""
    if a.error is not None:
        return a.error.unanswered
    return a.completion.unanswered if a.completion is not None else 0


def with_unanswered(
    price: Price, prompt: int, output_tokens: int, tries: int, usage: Usage, cost: int, source: str
) -> tuple[Usage, int, str]:
    """``usage``, ``cost`` and ``source`` with ``tries`` unanswered tries' estimates added
    (each charged as a call in flight: the prompt and ``output_tokens``)."""
    if not tries:
        return usage, cost, source
    each, each_cost, _ = in_flight_charge(price, prompt, output_tokens)
    added = Usage(usage.input_tokens + tries * each.input_tokens,
                  usage.output_tokens + tries * each.output_tokens,
                  usage.cached_tokens, usage.reasoning_tokens)
    return added, cost + tries * each_cost, source + UNANSWERED_SOURCE


def call_record(
    req: PendingRequest, a: Attempt, seq: int, ts: str, error: str | None, *, store: bool
) -> CallRecord:
    """The ledger row of attempt ``a``; ``error``: the request's, for a call without an outcome."""
    comp, q = a.completion, a.quality
    failed = comp is None
    usage, cost, source = a.usage, a.cost_nusd, a.cost_source if not failed else a.price.source
    err = redact(str(a.error)) if a.error else (error if failed else None)
    error_type = type(a.error).__name__ if a.error else ("CascadeError" if err else None)
    if a.in_flight:
        assert a.in_flight_output is not None
        usage, cost, source = in_flight_charge(a.price, req.prompt_estimate(), a.in_flight_output)
        err, error_type = IN_FLIGHT, IN_FLIGHT_TYPE
    elif tries := unanswered(a):
        output = a.in_flight_output if a.in_flight_output is not None else a.max_tokens or 0
        usage, cost, source = with_unanswered(
            a.price, req.prompt_estimate(), output, tries, usage, cost, source)
    return model_call(
        f"{req.id}-{seq}", req.id, ts, seq, a.role, a.model,
        status="error" if failed or a.error else "ok",
        usage=usage,
        cost_nusd=cost,
        cost_source=source,
        latency_ms=comp.latency_ms if comp else getattr(a.error, "latency_ms", 0.0),
        attempts=comp.attempts if comp else getattr(a.error, "attempts", 1),
        finish_reason=comp.finish_reason if comp else None,
        quality_score=q.score if q else None,
        quality_reasons=q.reasons if q else (),
        accepted=a.accepted,
        answer=comp.text if comp and store else None,
        error=err,
        response_id=comp.response_id if comp else None,
        response_model=comp.response_model if comp else None,
        max_tokens=a.max_tokens,
        error_type=error_type,
    )


class InFlightRows:
    """A call in flight's row as its journal line holds it (journal.write_in_flight), from
    a template per model, role and token limits built by ``call_record`` (the one shape of
    a call row): only its ids, time, prompt and cost differ between requests. Building
    and flattening the row was half of the line's cost (cProfile of Cascade._send)."""

    MAX_TEMPLATES = 1024  # a bound (a server's requests may each ask their own max_tokens)

    def __init__(self) -> None:
        self._templates: dict[tuple[object, ...], dict[str, Any]] = {}

    def row(self, req: PendingRequest, a: Attempt, seq: int, ts: str) -> dict[str, Any]:
        assert a.in_flight_output is not None
        key = (a.model.name, a.model.model, a.role, a.max_tokens, a.in_flight_output, a.price.source)
        template = self._templates.get(key)
        if template is None:
            if len(self._templates) >= self.MAX_TEMPLATES:
                self._templates.clear()
            template = self._templates[key] = plain_call(call_record(req, a, seq, ts, None, store=False))
        usage, cost, _ = in_flight_charge(a.price, req.prompt_estimate(), a.in_flight_output)
        return {**template, "id": f"{req.id}-{seq}", "request_id": req.id, "ts": ts, "seq": seq,
                "input_tokens": usage.input_tokens, "cost_nusd": cost}


def model_call(
    call_id: str, request_id: str, ts: str, seq: int, role: str, model: ModelConfig, *,
    status: str, usage: Usage, cost_nusd: int, cost_source: str, **rest: Any,
) -> CallRecord:
    """The row of one call to ``model``: its names and provider, the usage it is charged,
    and ``rest`` of CallRecord's fields (the cascade's calls, and shadow.py's)."""
    return CallRecord(
        id=call_id, request_id=request_id, ts=ts, seq=seq, role=role, model=model.name,
        model_id=model.model, provider=infer_provider(model), status=status,
        input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
        cached_tokens=usage.cached_tokens, reasoning_tokens=usage.reasoning_tokens,
        cost_nusd=cost_nusd, cost_source=cost_source, **rest,
    )


def request_head(req: PendingRequest, ts: str, error: str, *, store: bool) -> dict[str, object]:
    """The request's own columns as a call in flight's journal line holds them
    (journal.write_in_flight): what does not change while it runs. Built once a request."""
    if req.head is None:
        decision = req.decision
        req.head = {
            "id": req.id, "ts": ts, "user": req.user, "status": "interrupted", "error": error,
            "query": req.query if store else None, "answer": None, "domain": req.domain,
            "domain_confidence": req.domain_confidence, "external_id": req.external_id,
            "enforcement": decision.action if decision else "allow",
            "enforcement_message": decision.message if decision else None,
        }
    return req.head


def answering(attempts: list[Attempt]) -> list[Attempt]:
    """The attempts that each stand for one model of the chain (a draft's extra sample
    calls are part of its draft)."""
    return [a for a in attempts if a.role != "sample"]


def paid(attempts: list[Attempt]) -> bool:
    """Whether money may have been spent: a call answered, or one is in flight, or a try
    was sent and got no answer."""
    return any(a.completion is not None or a.in_flight or unanswered(a) for a in attempts)
