"""A real OTLP/HTTP receiver on loopback: accepts POST /v1/traces and /v1/metrics,
decodes the protobuf bodies with opentelemetry-proto and keeps what arrived as plain
dicts. It can also refuse (4xx), fail (5xx) or hang, for the failure tests."""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def value_of(v: Any) -> Any:
    """An OTLP AnyValue as a Python value."""
    which = v.WhichOneof("value")
    if which == "array_value":
        return tuple(value_of(x) for x in v.array_value.values)
    if which == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, which) if which else None


def attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in kvs}


@dataclass
class Collector:
    """``mode``: "ok", an HTTP status (e.g. 400, 503) to answer with, or "hang"."""

    mode: str | int = "ok"
    spans: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    posts: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)  # of each POST, names lower-cased
    resources: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                collector.received(self, body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Collector:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def received(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        with self._lock:
            self.posts.append(handler.path)
            self.headers.append({k.lower(): v for k, v in handler.headers.items()})
        if self.mode == "hang":
            self._stop.wait(30)
            return
        if isinstance(self.mode, int):
            handler.send_response(self.mode)
            handler.send_header("content-length", "0")
            handler.end_headers()
            return
        try:
            if handler.path == "/v1/traces":
                self._traces(body)
                reply = ExportTraceServiceResponse().SerializeToString()
            elif handler.path == "/v1/metrics":
                self._metrics(body)
                reply = ExportMetricsServiceResponse().SerializeToString()
            else:
                handler.send_response(404)
                handler.end_headers()
                return
        except DecodeError:
            handler.send_response(400)
            handler.end_headers()
            return
        handler.send_response(200)
        handler.send_header("content-type", "application/x-protobuf")
        handler.send_header("content-length", str(len(reply)))
        handler.end_headers()
        handler.wfile.write(reply)

    def _traces(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        out = []
        for rs in request.resource_spans:
            resource = attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    out.append(
                        {
                            "name": s.name,
                            "kind": KINDS[s.kind],
                            "trace_id": s.trace_id.hex(),
                            "span_id": s.span_id.hex(),
                            "parent_span_id": s.parent_span_id.hex(),
                            "start": s.start_time_unix_nano,
                            "end": s.end_time_unix_nano,
                            "attributes": attrs(s.attributes),
                            "events": [
                                {"name": e.name, "time": e.time_unix_nano, "attributes": attrs(e.attributes)}
                                for e in s.events
                            ],
                            "status": {0: "unset", 1: "ok", 2: "error"}[s.status.code],
                            "status_message": s.status.message,
                            "trace_state": s.trace_state,
                            "flags": s.flags,
                            "scope": ss.scope.name,
                            "resource": resource,
                        }
                    )
        with self._lock:
            self.spans.extend(out)
            self.resources.extend(attrs(rs.resource.attributes) for rs in request.resource_spans)

    def _metrics(self, body: bytes) -> None:
        request = ExportMetricsServiceRequest()
        request.ParseFromString(body)
        out = []
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    data = getattr(m, kind)
                    for p in data.data_points:
                        point: dict[str, Any] = {
                            "name": m.name,
                            "unit": m.unit,
                            "kind": kind,
                            "attributes": attrs(p.attributes),
                        }
                        if kind == "histogram":
                            point.update(
                                count=p.count,
                                sum=p.sum,
                                bounds=list(p.explicit_bounds),
                                buckets=list(p.bucket_counts),
                                min=p.min,
                                max=p.max,
                            )
                        else:
                            point["value"] = p.as_double if p.WhichOneof("value") == "as_double" else p.as_int
                            point["monotonic"] = getattr(data, "is_monotonic", None)
                        out.append(point)
        with self._lock:
            self.metrics.extend(out)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.spans) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.spans)
