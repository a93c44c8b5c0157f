"""A finished request, as the GenAI semantic conventions describe it: plain data, built
after the fact from the ledger record (live, or from history for a backfill), with the
calls' real start and end times. Nothing here imports OpenTelemetry.

The value types are NamedTuples, not dataclasses: `ask` imports this module only when
telemetry is on, and a frozen dataclass costs ~2 ms of CPU to create at import (its
generated methods are exec'd), a NamedTuple a sixth of that.

Conventions followed (open-telemetry/semantic-conventions-genai: model/gen-ai/registry.yaml,
docs/gen-ai/gen-ai-spans.md and gen-ai-metrics.md; ``gen_ai.provider.name`` replaced
``gen_ai.system``): one CLIENT span
per model call named ``chat {gen_ai.request.model}``, under one ``cascade.request`` span
carrying what the cascade decided. Cost uses the open proposal's
``gen_ai.usage.cost.amount`` / ``gen_ai.usage.cost.currency``. A call made after its
request was recorded (a shadow verification, ledger/records.py LaterCall) is sent on its
own, as the same CLIENT span under the request's span (``build_later_call``).
"""

from __future__ import annotations

import hashlib
import json
from typing import NamedTuple

from cascadeflow_cli.clock import parse_ts
from cascadeflow_cli.ledger.records import CallRecord, LaterCall, RequestRecord

AttrValue = str | bool | int | float | tuple[str, ...]
Attributes = dict[str, AttrValue]

NANOS_PER_USD = 1_000_000_000
OPERATION = "chat"

# our provider names (litellm's prefixes) -> the conventions' well-known values
PROVIDERS = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "anthropic": "anthropic",
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "mistral": "mistral_ai",
    "moonshot": "moonshot_ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
    "watsonx": "ibm.watsonx.ai",
}
ENFORCEMENT_EVENTS = {
    "warn": "cascade.budget.warning",
    "degrade": "cascade.budget.degraded",
    "block": "cascade.budget.refused",
}


class SpanOptions(NamedTuple):
    """What the spans may carry (``[telemetry]``)."""

    emit_cost: bool = True
    capture_content: bool = False
    record_user: bool = True


class EventSpec(NamedTuple):
    name: str
    time_ns: int
    attributes: Attributes


class SpanSpec(NamedTuple):
    name: str
    client: bool  # kind CLIENT (a model call), else INTERNAL
    span_id: int
    start_ns: int
    end_ns: int
    attributes: Attributes
    events: tuple[EventSpec, ...] = ()
    error: str | None = None  # the status description when the span failed


class TraceSpec(NamedTuple):
    trace_id: int
    root: SpanSpec
    calls: tuple[SpanSpec, ...]


def usd(nusd: int) -> float:
    return nusd / NANOS_PER_USD


def provider_name(provider: str) -> str:
    return PROVIDERS.get(provider, provider or "_OTHER")


def request_model(call: CallRecord) -> str:
    """The model name as sent to the provider: litellm's id without its provider prefix."""
    return call.model_id.split("/", 1)[1] if "/" in call.model_id else call.model_id


def _id(text: str, bits: int) -> int:
    """A stable non-zero id from the ledger's ids: live export and a later backfill of
    the same request give the same trace and span ids, so a backend sees one trace."""
    value = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=bits // 8).digest(), "big")
    return value or 1


def trace_id_of(request_id: str) -> int:
    """The request id itself when it is 32 hex digits (ours are uuid4 hex), so a trace is
    found by the id `cascade logs` shows; else a hash of it."""
    if len(request_id) == 32:
        try:
            return int(request_id, 16) or 1
        except ValueError:
            pass
    return _id(request_id, 128)


def request_span_id(request_id: str) -> int:
    """The span id of a request's ``cascade.request`` span (a later call's parent)."""
    return _id(request_id, 64)


def build_later_call(item: LaterCall, options: SpanOptions) -> TraceSpec:
    """A call made after its request was recorded (a shadow verification) as the root of
    a trace spec whose parent is the request's span (telemetry/direct.py ``resolve``):
    the same span, id included, a backfill of the request later puts among its calls."""
    end = item.start_ns + _ms_ns(item.call.latency_ms)
    span = _call_span(item.query, item.call, item.start_ns, end, options)
    return TraceSpec(trace_id_of(item.request_id), span, ())


def build_trace(record: RequestRecord, options: SpanOptions) -> TraceSpec:
    start = _ns(record.ts)
    end = start + _ms_ns(record.latency_ms)
    calls: list[SpanSpec] = []
    cursor = start
    for call in record.calls:
        # calls run one after another; the ledger keeps each one's duration
        call_end = min(cursor + _ms_ns(call.latency_ms), max(end, cursor))
        calls.append(_call_span(record.query, call, cursor, call_end, options))
        cursor = call_end
    end = max(end, cursor)
    return TraceSpec(trace_id_of(record.id), _request_span(record, start, end, options), tuple(calls))


def _request_span(record: RequestRecord, start: int, end: int, options: SpanOptions) -> SpanSpec:
    a: Attributes = {"cascade.request.id": record.id, "cascade.status": record.status}
    if options.record_user:
        a["enduser.id"] = record.user
    _put(a, "cascade.domain", record.domain)
    _put(a, "cascade.domain.confidence", record.domain_confidence)
    if record.calls:
        a["cascade.chain"] = tuple(c.model for c in record.calls)
    _put(a, "cascade.model", record.model)
    _put(a, "cascade.draft_model", record.draft_model)
    a["cascade.draft_accepted"] = record.draft_accepted
    a["cascade.escalated"] = record.escalated
    _put(a, "cascade.quality.score", record.quality_score)
    a["cascade.enforcement.action"] = record.enforcement
    _put(a, "cascade.external_id", record.external_id)
    if options.emit_cost:
        a["cascade.cost"] = usd(record.cost_nusd)
        a["cascade.verifier_only_cost"] = usd(record.verifier_only_cost_nusd)
        a["cascade.savings"] = usd(record.savings_nusd)
        a["cascade.cost.currency"] = "USD"
    events: list[EventSpec] = []
    name = ENFORCEMENT_EVENTS.get("block" if record.status == "blocked" else record.enforcement)
    if name is not None:
        attrs: Attributes = {"cascade.enforcement.action": record.enforcement}
        _put(attrs, "cascade.enforcement.message", record.enforcement_message or record.error)
        events.append(EventSpec(name, start, attrs))  # the budget gate runs before any call
    failed = record.status in ("error", "interrupted")
    if failed:
        last = record.calls[-1] if record.calls else None
        a["error.type"] = (last.error_type if last and last.error_type else None) or (
            "interrupted" if record.status == "interrupted" else "_OTHER"
        )
    return SpanSpec(
        "cascade.request",
        False,
        request_span_id(record.id),
        start,
        end,
        a,
        tuple(events),
        (record.error or record.status) if failed else None,
    )


def _call_span(query: str | None, call: CallRecord, start: int, end: int, options: SpanOptions) -> SpanSpec:
    model = request_model(call)
    a: Attributes = {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.provider.name": provider_name(call.provider),
        "gen_ai.request.model": model,
        "cascade.role": call.role,
        "cascade.model": call.model,
        "cascade.attempts": call.attempts,
    }
    _put(a, "gen_ai.request.max_tokens", call.max_tokens)
    _put(a, "gen_ai.response.model", call.response_model)
    _put(a, "gen_ai.response.id", call.response_id)
    if call.finish_reason:
        a["gen_ai.response.finish_reasons"] = (call.finish_reason,)
    if call.status == "ok":
        a["gen_ai.usage.input_tokens"] = call.input_tokens
        a["gen_ai.usage.output_tokens"] = call.output_tokens
    if call.cached_tokens:
        a["gen_ai.usage.cache_read.input_tokens"] = call.cached_tokens
    if call.reasoning_tokens:
        a["gen_ai.usage.reasoning.output_tokens"] = call.reasoning_tokens
    _put(a, "cascade.quality.score", call.quality_score)
    if call.accepted is not None:
        a["cascade.accepted"] = call.accepted
    if options.emit_cost:
        a["gen_ai.usage.cost.amount"] = usd(call.cost_nusd)
        a["gen_ai.usage.cost.currency"] = "USD"
        a["cascade.cost.source"] = call.cost_source
    error = None
    if call.status != "ok":
        a["error.type"] = call.error_type or "_OTHER"
        error = call.error or "failed"
    if options.capture_content:
        if query is not None:
            a["gen_ai.input.messages"] = _messages("user", query)
        if call.answer is not None:
            a["gen_ai.output.messages"] = _messages("assistant", call.answer, call.finish_reason)
    return SpanSpec(f"{OPERATION} {model}", True, _id(call.id, 64), start, end, a, (), error)


def _messages(role: str, text: str, finish_reason: str | None = None) -> str:
    """The conventions' message JSON (gen-ai-input/output-messages.json), as a string:
    OTLP attributes carry no nested objects."""
    message: dict[str, object] = {"role": role, "parts": [{"type": "text", "content": text}]}
    if role == "assistant":
        message["finish_reason"] = finish_reason or "stop"
    return json.dumps([message], ensure_ascii=False)


def _put(attrs: Attributes, key: str, value: AttrValue | None) -> None:
    if value is not None:
        attrs[key] = value


def _ns(ts: str) -> int:
    moment = parse_ts(ts)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def _ms_ns(ms: float | None) -> int:
    return max(0, round((ms or 0.0) * 1_000_000))


# --- metrics: what each finished request adds --------------------------------------


class MetricPoint(NamedTuple):
    instrument: str  # token_usage | duration | cost | savings
    value: float
    attributes: Attributes


def metric_points(record: RequestRecord | LaterCall, options: SpanOptions) -> list[MetricPoint]:
    """A request's points; a later call's (a shadow verification) are its call's alone."""
    points: list[MetricPoint] = []
    calls = (record.call,) if isinstance(record, LaterCall) else record.calls
    for call in calls:
        base: Attributes = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.provider.name": provider_name(call.provider),
            "gen_ai.request.model": request_model(call),
        }
        _put(base, "gen_ai.response.model", call.response_model)
        if call.status == "ok":
            for kind, count in (("input", call.input_tokens), ("output", call.output_tokens)):
                points.append(MetricPoint("token_usage", count, {**base, "gen_ai.token.type": kind}))
            duration = base
        else:
            duration = {**base, "error.type": call.error_type or "_OTHER"}
        points.append(MetricPoint("duration", (call.latency_ms or 0.0) / 1000, duration))
        if options.emit_cost:
            who: Attributes = {"gen_ai.request.model": request_model(call), "cascade.role": call.role}
            if options.record_user:
                who["enduser.id"] = record.user
            points.append(MetricPoint("cost", usd(call.cost_nusd), who))
    if options.emit_cost and (isinstance(record, LaterCall) or record.status == "ok"):
        who = {"enduser.id": record.user} if options.record_user else {}
        # a shadow's cost is added to its (answered) request, whose savings shrink by it
        saved = -record.call.cost_nusd if isinstance(record, LaterCall) else record.savings_nusd
        points.append(MetricPoint("savings", usd(saved), who))
    return points
