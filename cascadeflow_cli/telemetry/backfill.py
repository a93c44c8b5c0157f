"""`cascade export --otlp`: ledger history as spans with their original timestamps.

Spans only: a metric point carries the time it is collected, so history sent as metrics
would land on today. Over OTLP/HTTP the spans go through the SDK-free exporter
(telemetry/stream.py: no [otel] extra needed, and a quarter of the SDK's CPU a request);
over gRPC through the SDK. They go in chunks, each flushed before the next is built and
never more than the span queue holds, so the queue never drops a span and a dead
collector stops the export at the first chunk instead of after the whole history."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cascadeflow_cli.errors import TelemetryError
from cascadeflow_cli.ledger.records import RequestRecord
from cascadeflow_cli.telemetry import open_sink
from cascadeflow_cli.telemetry.settings import TelemetrySettings
from cascadeflow_cli.telemetry.stream import StreamSink, env_int

if TYPE_CHECKING:
    from cascadeflow_cli.telemetry.sink import TelemetrySink

CHUNK = 400  # requests at most, between two acknowledged flushes
CHUNK_WAIT_S = 30.0


@dataclass(frozen=True)
class BackfillResult:
    requests: int
    spans: int
    endpoint: str


def backfill(
    settings: TelemetrySettings,
    records: Iterable[RequestRecord],
    on_progress: Callable[[int], None] | None = None,
) -> BackfillResult:
    sink: StreamSink | TelemetrySink
    if settings.protocol == "http/protobuf":
        sink = StreamSink(settings, metrics=False)
    else:
        sink = open_sink(settings, metrics=False)
    room = env_int("OTEL_BSP_MAX_QUEUE_SIZE", 2048)  # what both sinks' span queues hold
    sent = pending = pending_spans = 0
    for record in records:
        spans = 1 + len(record.calls)
        if pending and (pending == CHUNK or pending_spans + spans > room):
            sent += _flush(sink, pending, sent)
            pending = pending_spans = 0
            if on_progress is not None:
                on_progress(sent)
        sink.record(record)
        pending += 1
        pending_spans += spans
    if pending:
        sent += _flush(sink, pending, sent)
    report = sink.report()
    return BackfillResult(sent, report.delivered, settings.traces_endpoint)


def _flush(sink: StreamSink | TelemetrySink, pending: int, sent: int) -> int:
    report = sink.flush(max(CHUNK_WAIT_S, sink.settings.flush_timeout))
    if not report.ok:
        reason = report.error or ("no answer in time" if report.timed_out else "refused")
        raise TelemetryError(
            f"{report.endpoint}: {reason}; {sent:,} requests were sent before it failed, "
            f"{report.spans - report.delivered:,} spans not delivered"
        )
    return pending
