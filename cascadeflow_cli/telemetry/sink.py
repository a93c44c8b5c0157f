"""The OpenTelemetry SDK behind one small object: ``record(request)`` turns a finished
ledger record into spans and metrics, ``close()`` flushes within a bounded time and
says what did not arrive. Importing this module imports the SDK: only do it when
telemetry is on.

Export runs in the SDK's background threads (a BatchSpanProcessor with a bounded queue,
a periodic metric reader), so a slow collector never slows a request; the only wait is
the flush at exit, which runs in its own daemon thread and is abandoned after
``flush_timeout`` (this SDK's force_flush ignores its timeout and blocks on the export).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode

from cascadeflow_cli import __version__
from cascadeflow_cli.ledger.records import LaterCall, RequestRecord
from cascadeflow_cli.telemetry.context import Parent
from cascadeflow_cli.telemetry.direct import resolve
from cascadeflow_cli.telemetry.instruments import INSTRUMENTS, SCOPE
from cascadeflow_cli.telemetry.report import FlushReport
from cascadeflow_cli.telemetry.settings import TelemetrySettings, own_resource_attributes
from cascadeflow_cli.telemetry.spans import SpanOptions, SpanSpec, metric_points


class _Tally:
    """What the exporters report back, and the SDK's own complaints, counted."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spans_sent = 0
        self.spans_failed = 0
        self.metric_failures = 0
        self.dropped = 0
        self.span_error: str | None = None
        self.metric_error: str | None = None
        self.other_error: str | None = None

    @property
    def last_error(self) -> str | None:
        return self.span_error or self.metric_error or self.other_error

    def spans(self, count: int, ok: bool) -> None:
        with self.lock:
            if ok:
                self.spans_sent += count
            else:
                self.spans_failed += count

    def metrics(self, ok: bool) -> None:
        if not ok:
            with self.lock:
                self.metric_failures += 1


class _Complaints(logging.Handler):
    """Keeps the SDK's log lines off stderr (we print one line of our own) and remembers
    the last one, and how many spans a full queue dropped."""

    def __init__(self, tally: _Tally) -> None:
        super().__init__(logging.WARNING)
        self.tally = tally

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call must not break export
            return
        with self.tally.lock:
            line = message.splitlines()[0][:160] if message else record.levelname
            if message.startswith("Queue full"):
                self.tally.dropped += 1
            elif "span" in message.lower():
                self.tally.span_error = line
            elif "metric" in message.lower():
                self.tally.metric_error = line
            else:
                self.tally.other_error = line


class _LedgerIds(IdGenerator):
    """Trace and span ids from the ledger's ids (set just before each span starts), so a
    live run and a later backfill name the same trace; random when none is set."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._random = RandomIdGenerator()

    def next(self, trace_id: int | None, span_id: int) -> None:
        self._local.trace_id = trace_id
        self._local.span_id = span_id

    def generate_trace_id(self) -> int:
        value = getattr(self._local, "trace_id", None)
        self._local.trace_id = None
        return value or self._random.generate_trace_id()

    def generate_span_id(self) -> int:
        value = getattr(self._local, "span_id", None)
        self._local.span_id = None
        return value or self._random.generate_span_id()


def _counted(base: type, on_result: Any) -> type:
    """``base`` (an OTLP exporter class) reporting each export's outcome to ``on_result``."""

    class Counted(base):  # type: ignore[misc, valid-type]
        def export(self, batch: Any, *args: Any, **kwargs: Any) -> Any:
            result = None
            try:
                result = super().export(batch, *args, **kwargs)
                return result
            finally:
                on_result(batch, getattr(result, "name", "FAILURE") == "SUCCESS")

    Counted.__name__ = f"Counted{base.__name__}"
    return Counted


def _exporter_classes(protocol: str) -> tuple[type, type]:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter, OTLPMetricExporter


class TelemetrySink:
    """Spans and metrics for finished requests, exported in the background."""

    def __init__(self, settings: TelemetrySettings, *, metrics: bool = True) -> None:
        self.settings = settings
        self.options = SpanOptions(settings.emit_cost, settings.capture_content, settings.record_user)
        self.tally = _Tally()
        self._made = 0
        self._made_lock = threading.Lock()
        self._complaints = _Complaints(self.tally)
        sdk_log = logging.getLogger("opentelemetry")
        sdk_log.addHandler(self._complaints)
        sdk_log.propagate = False  # Python's last-resort handler would print every complaint
        resource = _resource(settings)
        span_cls, metric_cls = _exporter_classes(settings.protocol)
        # each export may take three quarters of the flush budget; the rest covers the SDK's
        # start-up, so a dead or hung collector costs a command at most flush_timeout
        timeout = max(settings.flush_timeout * 0.75, 0.001)
        spans_out = _counted(span_cls, lambda batch, ok: self.tally.spans(len(batch), ok))(
            endpoint=settings.traces_endpoint, timeout=timeout
        )
        self._ids = _LedgerIds()
        self.tracer_provider = TracerProvider(
            resource=resource, id_generator=self._ids, shutdown_on_exit=False
        )
        self.tracer_provider.add_span_processor(BatchSpanProcessor(spans_out))
        self.tracer = self.tracer_provider.get_tracer(SCOPE, __version__)
        self.meter_provider: MeterProvider | None = None
        if metrics:
            metrics_out = _counted(metric_cls, lambda _batch, ok: self.tally.metrics(ok))(
                endpoint=settings.metrics_endpoint, timeout=timeout
            )
            reader = PeriodicExportingMetricReader(metrics_out)
            # exemplars link a measurement to the span active when it was taken; ours are
            # recorded after the fact, outside any span, so they would only cost time
            exemplars = (
                {}
                if os.environ.get("OTEL_METRICS_EXEMPLAR_FILTER")
                else {"exemplar_filter": AlwaysOffExemplarFilter()}
            )
            self.meter_provider = MeterProvider(
                resource=resource, metric_readers=[reader], shutdown_on_exit=False, **exemplars
            )
            self._totals = _Totals()
            self._instruments = _instruments(self.meter_provider, self._totals)

    # --- recording ----------------------------------------------------------------

    def record(self, request: RequestRecord | LaterCall, parent: Parent | None = None) -> None:
        """Spans (and metrics) for one finished request, under ``parent`` (a caller's span,
        from its traceparent) if given. Never raises: telemetry must not change an answer
        or an exit code."""
        try:
            self._spans(request, parent)
            if self.meter_provider is not None:
                self._metrics(request)
        except Exception as exc:  # pragma: no cover - a bug here must not cost the answer
            with self.tally.lock:
                self.tally.other_error = f"could not build spans: {type(exc).__name__}: {exc}"

    def _spans(self, request: RequestRecord | LaterCall, parent: Parent | None = None) -> None:
        spec, parent = resolve(request, parent, self.options)
        self._ids.next(spec.trace_id, spec.root.span_id)  # the trace id is unused under a parent
        root = self._start(spec.root, _remote_context(parent))
        parent = trace.set_span_in_context(root)
        made = 0
        for call in spec.calls:
            self._ids.next(None, call.span_id)
            span = self._start(call, parent)
            made += span.is_recording()  # OTEL_TRACES_SAMPLER may sample a trace out
            self._end(span, call)
        made += root.is_recording()
        self._end(root, spec.root)
        with self._made_lock:
            self._made += made

    def _start(self, spec: SpanSpec, parent: Any) -> Any:
        kind = SpanKind.CLIENT if spec.client else SpanKind.INTERNAL
        span = self.tracer.start_span(
            spec.name, context=parent, kind=kind, attributes=spec.attributes, start_time=spec.start_ns
        )
        for event in spec.events:
            span.add_event(event.name, event.attributes, timestamp=event.time_ns)
        if spec.error is not None:
            span.set_status(Status(StatusCode.ERROR, spec.error))
        return span

    @staticmethod
    def _end(span: Any, spec: SpanSpec) -> None:
        span.end(end_time=spec.end_ns)

    def _metrics(self, request: RequestRecord | LaterCall) -> None:
        for point in metric_points(request, self.options):
            if point.instrument in ("cost", "savings"):
                self._totals.add(point.instrument, point.value, point.attributes)
            else:
                self._instruments[point.instrument].record(point.value, point.attributes)

    # --- flushing -----------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> FlushReport:
        """Send what is queued; wait at most ``timeout`` (default: flush_timeout) seconds."""
        wait = self.settings.flush_timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        providers: list[Any] = [self.tracer_provider]
        if self.meter_provider is not None:
            providers.append(self.meter_provider)
        # both signals at once, in daemon threads: the wait is the slower one, never the sum
        flushes = [threading.Thread(target=p.force_flush, name="otel-flush", daemon=True) for p in providers]
        for thread in flushes:
            thread.start()
        for thread in flushes:
            thread.join(max(0.0, deadline - time.monotonic()))
        return self.report(timed_out=any(t.is_alive() for t in flushes))

    def report(self, *, timed_out: bool = False) -> FlushReport:
        with self.tally.lock, self._made_lock:
            return FlushReport(
                spans=self._made,
                delivered=self.tally.spans_sent,
                dropped=self.tally.dropped,
                metric_failures=self.tally.metric_failures,
                timed_out=timed_out,
                error=self.tally.last_error,
                endpoint=self.settings.traces_endpoint,
            )

    def close(self) -> FlushReport:
        """The final flush. The providers are not shut down: their shutdown joins export
        threads that a hung collector can hold for the exporter's timeout; they are
        daemon threads, and the process is about to end."""
        # the complaints handler stays: an export still running may yet complain
        return self.flush()


def _remote_context(parent: Parent | None) -> Any:
    """The SDK's context for a caller's span: the trace is the caller's, and the
    parent-based samplers follow its sampled flag."""
    if parent is None:
        return None
    flags = trace.TraceFlags(trace.TraceFlags.SAMPLED if parent.sampled else trace.TraceFlags.DEFAULT)
    state = trace.TraceState.from_header([parent.trace_state]) if parent.trace_state else None
    caller = trace.SpanContext(
        parent.trace_id, parent.span_id, is_remote=parent.remote, trace_flags=flags, trace_state=state
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(caller))


def _resource(settings: TelemetrySettings) -> Resource:
    """Ours (telemetry/settings.py), with OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME
    read by Resource.create."""
    return Resource.create(own_resource_attributes(settings))


class _Totals:
    """Running sums for the two money counters, observed at collection time: a plain
    dict update instead of the SDK's per-measurement work (most of a request's metric
    cost; the histograms still record each call)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sums: dict[str, dict[tuple[tuple[str, Any], ...], float]] = {"cost": {}, "savings": {}}

    def add(self, name: str, value: float, attributes: dict[str, Any]) -> None:
        key = tuple(sorted(attributes.items()))
        with self._lock:
            sums = self._sums[name]
            sums[key] = sums.get(key, 0.0) + value

    def callback(self, name: str) -> Any:
        def observe(_options: Any) -> list[Observation]:
            with self._lock:
                return [Observation(total, dict(key)) for key, total in self._sums[name].items()]

        return observe


def _instruments(provider: MeterProvider, totals: _Totals) -> dict[str, Any]:
    meter = provider.get_meter(SCOPE, __version__)
    made: dict[str, Any] = {}
    for key, spec in INSTRUMENTS.items():
        if spec.kind == "histogram":
            made[key] = meter.create_histogram(
                spec.name,
                unit=spec.unit,
                description=spec.description,
                explicit_bucket_boundaries_advisory=list(spec.buckets),
            )
        else:
            create = (
                meter.create_observable_counter
                if spec.kind == "counter"
                else meter.create_observable_up_down_counter
            )
            made[key] = create(
                spec.name, [totals.callback(key)], unit=spec.unit, description=spec.description
            )
    return made
