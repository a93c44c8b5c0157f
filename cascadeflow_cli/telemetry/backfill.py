"""`cascade export --otlp`: ledger history as spans with their original timestamps.

Spans only: a metric point carries the time it is collected, so history sent as metrics
would land on today. The spans go in chunks, each flushed before the next is built, so
the bounded queue never drops a span and a dead collector stops the export at the first
chunk instead of after the whole history."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cascadeflow_cli.errors import TelemetryError
from cascadeflow_cli.ledger.records import RequestRecord
from cascadeflow_cli.telemetry import open_sink
from cascadeflow_cli.telemetry.settings import TelemetrySettings

CHUNK = 400  # requests: at most 3 spans each, well inside the SDK's 2048-span queue
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
    sink = open_sink(settings, metrics=False)
    sent = 0
    pending = 0
    for record in records:
        sink.record(record)
        pending += 1
        if pending == CHUNK:
            sent += _flush(sink, pending, sent)
            pending = 0
            if on_progress is not None:
                on_progress(sent)
    if pending:
        sent += _flush(sink, pending, sent)
    report = sink.report()
    return BackfillResult(sent, report.delivered, settings.traces_endpoint)


def _flush(sink: object, pending: int, sent: int) -> int:
    report = sink.flush(max(CHUNK_WAIT_S, sink.settings.flush_timeout))  # type: ignore[attr-defined]
    if not report.ok:
        reason = report.error or ("no answer in time" if report.timed_out else "refused")
        raise TelemetryError(
            f"{report.endpoint}: {reason}; {sent:,} requests were sent before it failed, "
            f"{report.spans - report.delivered:,} spans not delivered"
        )
    return pending
