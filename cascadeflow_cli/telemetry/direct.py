"""Telemetry for a one-shot command (`cascade ask`) without the SDK: keep the finished
requests, and at exit encode their spans and metric points as OTLP/HTTP protobuf
(telemetry/wire.py) and POST them with http.client, within ``flush_timeout``.

It honours what the SDK's exporter would read from the environment:
OTEL_EXPORTER_OTLP[_TRACES|_METRICS]_HEADERS, _COMPRESSION (gzip) and _CERTIFICATE, and
the OTEL_TRACES_SAMPLER family (always_on/off, traceidratio, parentbased_*). Long-running
commands (`batch`, `serve`) keep the SDK (telemetry/sink.py): its batching and periodic
metric export pay for their import there."""

from __future__ import annotations

import bisect
import http.client
import os
import threading
import time
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from cascadeflow_cli import __version__
from cascadeflow_cli.ledger.records import LaterCall, RequestRecord
from cascadeflow_cli.telemetry import wire
from cascadeflow_cli.telemetry.context import Parent
from cascadeflow_cli.telemetry.instruments import INSTRUMENTS, SCOPE
from cascadeflow_cli.telemetry.report import FlushReport
from cascadeflow_cli.telemetry.settings import TelemetrySettings, resource_attributes
from cascadeflow_cli.telemetry.spans import (
    Attributes,
    SpanOptions,
    TraceSpec,
    build_later_call,
    build_trace,
    metric_points,
    request_span_id,
)

RETRYABLE = (429, 502, 503, 504)  # the OTLP spec's retryable statuses
RETRY_WAITS_S = (0.1, 0.3)
TIMED_OUT = "timed out"  # said as "gave up waiting for the collector"
_MASK64 = (1 << 64) - 1


def sampled(trace_id: int, parent: Parent | None, env: Mapping[str, str] = os.environ) -> bool:
    """The SDK's decision for OTEL_TRACES_SAMPLER / _ARG (default parentbased_always_on);
    an unknown sampler falls back to the default, as the SDK does."""
    name = (env.get("OTEL_TRACES_SAMPLER") or "parentbased_always_on").strip().lower()
    if name.startswith("parentbased_") and parent is not None:
        return parent.sampled
    if name in ("always_off", "parentbased_always_off"):
        return False
    if name in ("traceidratio", "parentbased_traceidratio"):
        try:
            rate = float(env.get("OTEL_TRACES_SAMPLER_ARG") or 1.0)
        except ValueError:
            rate = 1.0
        rate = rate if 0.0 <= rate <= 1.0 else 1.0
        return (trace_id & _MASK64) < round(rate * (_MASK64 + 1))  # TraceIdRatioBased's rule
    return True


def resolve(item: RequestRecord | LaterCall, parent: Parent | None,
            options: SpanOptions) -> tuple[TraceSpec, Parent | None]:
    """``item``'s spans and the span they hang under: a request under its caller's span
    (``parent``, or none); a later call (a shadow verification) under its request's span,
    in the trace the request went to, sampled as that request was (``parent``: the
    request's caller, as given with the request)."""
    if not isinstance(item, LaterCall):
        return build_trace(item, options), parent
    trace = build_later_call(item, options)
    trace_id = parent.trace_id if parent else trace.trace_id
    return trace, Parent(trace_id, request_span_id(item.request_id), sampled(trace_id, parent),
                         remote=False, trace_state=parent.trace_state if parent else "")


def _signal_env(env: Mapping[str, str], signal: str, name: str) -> str:
    return (
        env.get(f"OTEL_EXPORTER_OTLP_{signal}_{name}") or env.get(f"OTEL_EXPORTER_OTLP_{name}") or ""
    ).strip()


def _headers(env: Mapping[str, str], signal: str) -> dict[str, str]:
    """``k=v,k2=v2`` (values percent-decoded): often an API key, so never printed."""
    out: dict[str, str] = {}
    for item in _signal_env(env, signal, "HEADERS").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            out[key.strip().lower()] = unquote(value.strip())
    return out


class _Metrics:
    """Cumulative aggregates of this process's metric points, as the SDK would keep them."""

    def __init__(self) -> None:
        self.histograms: dict[tuple[str, tuple], wire.HistogramPoint] = {}
        self.sums: dict[tuple[str, tuple], wire.SumPoint] = {}

    def add(self, instrument: str, value: float, attributes: Attributes) -> None:
        key = (instrument, tuple(sorted(attributes.items())))
        spec = INSTRUMENTS[instrument]
        if spec.kind != "histogram":
            self.sums.setdefault(key, wire.SumPoint(attributes)).value += value
            return
        point = self.histograms.get(key)
        if point is None:
            point = self.histograms[key] = wire.HistogramPoint(
                attributes, spec.buckets, [0] * (len(spec.buckets) + 1)
            )
        point.bucket_counts[bisect.bisect_left(spec.buckets, value)] += 1  # buckets are (low, high]
        point.count += 1
        point.total += value
        point.low, point.high = min(point.low, value), max(point.high, value)

    def data(self) -> list[wire.MetricData]:
        out = []
        for key, spec in INSTRUMENTS.items():
            table = self.histograms if spec.kind == "histogram" else self.sums
            points = [p for (name, _), p in table.items() if name == key]
            out.append(
                wire.MetricData(
                    spec.name,
                    spec.unit,
                    spec.description,
                    spec.kind == "histogram",
                    spec.kind == "counter",
                    points,
                )
            )
        return out


class DirectSink:
    """Same face as BackgroundSink: ``record()`` never raises or waits, ``finish()`` returns
    the warning line, or None when all arrived.

    The first record starts the send at once, in a daemon thread (`ask` has one request):
    the post overlaps printing the answer and closing the ledger, so a reachable collector
    adds little more than the encoding, and the one deadline, ``flush_timeout`` from that
    first send, bounds what a dead or hung collector can cost the whole command (a record
    that comes after it, a shadow call's, gets one of its own if all before it arrived)."""

    def __init__(self, settings: TelemetrySettings, *, metrics: bool = True) -> None:
        self.settings = settings
        self.options = SpanOptions(settings.emit_cost, settings.capture_content, settings.record_user)
        self.with_metrics = metrics  # off for a backfill: a metric point is stamped "now"
        self.started_ns = time.time_ns()  # the cumulative metrics' start
        self._lock = threading.Lock()
        self._spans: list[bytes] = []  # encoded, not yet handed to a post
        self._metrics = _Metrics()
        self._error: str | None = None
        self._resource_attributes: dict[str, str] | None = None
        self._made = self._delivered = self._metric_failures = 0
        self._metrics_due = self._timed_out = False
        self._send_error: str | None = None
        self._sender: threading.Thread | None = None
        self._deadline: float | None = None

    def record(self, request: RequestRecord | LaterCall, parent: Parent | None = None) -> None:
        try:
            trace, parent = resolve(request, parent, self.options)
            points = metric_points(request, self.options) if self.with_metrics else []
            keep = sampled(parent.trace_id if parent else trace.trace_id, parent)
            spans = wire.trace_spans(trace, parent) if keep else []
            with self._lock:
                self._keep(spans)
                for point in points:
                    self._metrics.add(point.instrument, point.value, point.attributes)
                self._metrics_due = self._metrics_due or bool(points)
        except Exception as exc:  # pragma: no cover - a bug here must not cost the answer
            self._error = f"could not build spans: {type(exc).__name__}: {exc}"
            return
        self._ready()

    def _keep(self, spans: list[bytes]) -> None:
        """(under the lock) Hold encoded spans until they are sent."""
        self._spans += spans
        self._made += len(spans)

    def _ready(self) -> None:
        """Something is waiting to be sent: make sure a sender is on it."""
        with self._lock:
            if self._sender is not None:
                return  # it looks for more before it stops (under this lock)
            now = time.monotonic()
            if self._deadline is None:
                self._deadline = now + self.settings.flush_timeout
            elif self._deadline < now and not self._timed_out and self._send_error is None:
                # a record after the sends ended (a shadow call, seconds after its request):
                # its own flush_timeout, while the collector took everything in time so far
                self._deadline = now + self.settings.flush_timeout
            # a daemon thread: a collector that trickles its answer cannot hold the exit
            self._sender = threading.Thread(target=self._send_loop, name="otlp-send", daemon=True)
            self._sender.start()

    def _send_loop(self) -> None:
        connections: Connections = {}
        deadline = self._deadline or time.monotonic()
        try:
            while True:
                with self._lock:
                    spans, self._spans = self._spans, []
                    metrics_due, self._metrics_due = self._metrics_due, False
                    if not spans and not metrics_due:
                        self._sender = None
                        return
                # both signals at once (two connections): the wait is the slower post, not the sum
                helper = None
                if metrics_due:
                    helper = threading.Thread(
                        target=self._send_metrics, args=(deadline,), name="otlp-metrics", daemon=True
                    )
                    helper.start()
                if spans:
                    why = post(connections, *self.traces_post(spans), deadline)
                    self._outcome(why, spans=len(spans))
                if helper is not None:
                    helper.join(max(0.0, deadline - time.monotonic()))
                    if helper.is_alive():
                        self._outcome(TIMED_OUT, metrics=True)
        finally:
            for conn in connections.values():
                conn.close()

    def _send_metrics(self, deadline: float) -> None:
        connections: Connections = {}
        try:
            if (metrics := self.metrics_post()) is not None:
                self._outcome(post(connections, *metrics, deadline), metrics=True)
        finally:
            for conn in connections.values():
                conn.close()

    def _outcome(self, why: str | None, *, spans: int = 0, metrics: bool = False) -> None:
        with self._lock:
            if why is None:
                self._delivered += spans
                return
            self._metric_failures += int(metrics)
            if why == TIMED_OUT:
                self._timed_out = True
            else:
                self._send_error = self._send_error or why

    def traces_post(self, spans: list[bytes]) -> tuple[str, str, bytes]:
        body = wire.traces_request(self._resource(), wire.Scope(SCOPE, __version__), spans)
        return ("TRACES", self.settings.traces_endpoint, body)

    def metrics_post(self) -> tuple[str, str, bytes] | None:
        """This process's cumulative metrics so far, or None before the first point."""
        with self._lock:
            metrics = self._metrics.data()
        if not any(m.points for m in metrics):
            return None
        scope = wire.Scope(SCOPE, __version__)
        body = wire.metrics_request(self._resource(), scope, metrics, self.started_ns, time.time_ns())
        return ("METRICS", self.settings.metrics_endpoint, body)

    def _resource(self) -> dict[str, str]:
        if self._resource_attributes is None:  # one service.instance.id for the whole process
            self._resource_attributes = resource_attributes(self.settings)
        return self._resource_attributes

    def finish(self) -> str | None:
        """Wait for the send until the deadline (never longer), then say what is missing."""
        with self._lock:
            sender, deadline = self._sender, self._deadline
        if sender is not None and deadline is not None:
            sender.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            report = FlushReport(
                spans=self._made,
                delivered=self._delivered,
                dropped=0,
                metric_failures=self._metric_failures,
                timed_out=self._timed_out or (self._sender is not None and self._sender.is_alive()),
                error=self._send_error or self._error,
                endpoint=self.settings.traces_endpoint,
            )
        return report.warning()


Connections = dict[tuple[str, str, int | None], http.client.HTTPConnection]


def post(
    connections: Connections,
    signal: str,
    url: str,
    body: bytes,
    deadline: float,
) -> str | None:
    """POST one payload (retrying 429/5xx while time is left); None on success, else why not."""
    env = os.environ
    parts = urlsplit(url)
    headers = {"content-type": "application/x-protobuf", "user-agent": f"cascadeflow-cli/{__version__}"}
    headers.update(_headers(env, signal))
    if _signal_env(env, signal, "COMPRESSION").lower() == "gzip":
        import gzip

        body = gzip.compress(body)
        headers["content-encoding"] = "gzip"
    key = (parts.scheme, parts.hostname or "", parts.port)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    for attempt in range(len(RETRY_WAITS_S) + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return TIMED_OUT
        try:
            conn = connections.get(key)
            if conn is None:
                conn = connections[key] = _connect(
                    parts.scheme, parts.hostname or "", parts.port, remaining, signal
                )
            conn.timeout = remaining
            if conn.sock is not None:
                conn.sock.settimeout(remaining)
            conn.request("POST", path, body, headers)
            response = conn.getresponse()
            response.read()
        except TimeoutError:
            connections.pop(key, None)
            return TIMED_OUT
        except (OSError, http.client.HTTPException) as exc:
            connections.pop(key, None)
            return f"{type(exc).__name__}: {exc}"
        if 200 <= response.status < 300:
            return None
        why = f"HTTP {response.status} {response.reason}".strip()
        if response.status not in RETRYABLE or attempt == len(RETRY_WAITS_S):
            return why
        time.sleep(min(RETRY_WAITS_S[attempt], max(0.0, deadline - time.monotonic())))
    return why  # pragma: no cover - the loop returns


def _connect(
    scheme: str, host: str, port: int | None, timeout: float, signal: str
) -> http.client.HTTPConnection:
    if scheme != "https":
        return http.client.HTTPConnection(host, port, timeout=timeout)
    import ssl

    cafile = _signal_env(os.environ, signal, "CERTIFICATE") or None
    return http.client.HTTPSConnection(
        host, port, timeout=timeout, context=ssl.create_default_context(cafile=cafile)
    )
