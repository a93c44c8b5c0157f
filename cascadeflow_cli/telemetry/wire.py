"""OTLP/HTTP protobuf payloads written with the standard library, for a one-shot command.

Why not the SDK here: `cascade ask` sends one request's two or three spans and a handful
of metric points once, at exit. Importing the SDK, its OTLP exporter, protobuf and
requests costs 140-170 ms of CPU (measured with ``python -X importtime``, see
bench/telemetry_overhead.py), several times the 60 ms the whole of telemetry may add.
Encoding these few messages by hand is ~150 lines and well under a millisecond; it
speaks the binary protobuf encoding (``application/x-protobuf``, the OTLP/HTTP default),
so receivers that accept only binary payloads get what the SDK would send. The tests
decode every payload with the official ``opentelemetry-proto`` classes.

Field numbers: opentelemetry-proto v1 (common, resource, trace, metrics and the two
collector services), checked against its descriptors. Only the fields we send.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from cascadeflow_cli.telemetry.spans import AttrValue, SpanSpec, TraceSpec

if TYPE_CHECKING:
    from cascadeflow_cli.telemetry.context import Parent

SPAN_KIND_INTERNAL, SPAN_KIND_CLIENT = 1, 3
STATUS_ERROR = 2
TEMPORALITY_CUMULATIVE = 2
# Span.flags: "has is_remote" always, plus "is remote" when the parent came from elsewhere
FLAG_HAS_IS_REMOTE, FLAG_IS_REMOTE = 0x100, 0x200

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


_SMALL = [bytes((i,)) for i in range(128)]
_TAGS: dict[int, bytes] = {}
_KEYS: dict[str, bytes] = {}  # attribute keys, encoded once (a fixed, small set)


def _varint(n: int) -> bytes:
    if 0 <= n < 128:  # most lengths, tags and flags: a batch encodes hundreds of thousands
        return _SMALL[n]
    n &= (1 << 64) - 1  # negative int64 as its two's complement, as protobuf does
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _tag(field: int, wire: int) -> bytes:
    key = field << 3 | wire
    tag = _TAGS.get(key)
    if tag is None:
        tag = _TAGS[key] = _varint(key)
    return tag


def _bytes(field: int, payload: bytes) -> bytes:
    return _tag(field, _LEN) + _varint(len(payload)) + payload


def _str(field: int, text: str) -> bytes:
    return _bytes(field, text.encode("utf-8", "surrogatepass"))


def _fixed64(field: int, n: int) -> bytes:
    return _tag(field, _I64) + struct.pack("<Q", n)


def _double(field: int, x: float) -> bytes:
    return _tag(field, _I64) + struct.pack("<d", x)


def _uint(field: int, n: int) -> bytes:
    return _tag(field, _VARINT) + _varint(n)


# --- common -----------------------------------------------------------------------------


def any_value(value: AttrValue) -> bytes:
    """An AnyValue (a oneof: written even when it holds a zero or an empty string)."""
    if isinstance(value, bool):  # before int: bool is an int
        return _uint(2, int(value))
    if isinstance(value, int):
        return _uint(3, value)
    if isinstance(value, float):
        return _double(4, value)
    if isinstance(value, tuple):
        return _bytes(5, b"".join(_bytes(1, any_value(v)) for v in value))
    return _str(1, str(value))


def _key(key: str) -> bytes:
    encoded = _KEYS.get(key)
    if encoded is None:
        encoded = _str(1, key)
        if len(_KEYS) < 4096:  # keys are ours and the resource's; bounded all the same
            _KEYS[key] = encoded
    return encoded


# Encoded KeyValues of text attributes, per (field, key): most repeat on every request
# (operation, provider, model, role, currency...); a key seen with more than
# _VALUES_PER_KEY values (ids) is marked None and never cached again. The encoding was a
# third of telemetry's CPU a batch row.
_KEY_VALUES: dict[tuple[int, str], dict[AttrValue, bytes] | None] = {}
_VALUES_PER_KEY = 64


def _key_value(field: int, key: str, value: AttrValue) -> bytes:
    return _bytes(field, _key(key) + _bytes(2, any_value(value)))


def key_values(field: int, attributes: Mapping[str, AttrValue]) -> bytes:
    out = []
    for k, v in attributes.items():
        if type(v) is not str and type(v) is not tuple:  # numbers vary, and True == 1 as a key
            out.append(_key_value(field, k, v))
            continue
        seen = _KEY_VALUES.get((field, k), _NEW)
        encoded = None if seen is None else seen.get(v)
        if encoded is None:
            encoded = _key_value(field, k, v)
            if seen is _NEW and len(_KEY_VALUES) < 4096:
                _KEY_VALUES[(field, k)] = seen = {}
            if seen is not None and seen is not _NEW:
                if len(seen) < _VALUES_PER_KEY:
                    seen[v] = encoded
                else:
                    _KEY_VALUES[(field, k)] = None
        out.append(encoded)
    return b"".join(out)


_NEW: dict[AttrValue, bytes] = {}  # a marker: this (field, key) has no cache yet


class Scope(NamedTuple):
    name: str
    version: str


def _scope(scope: Scope) -> bytes:
    return _str(1, scope.name) + _str(2, scope.version)


# --- traces -----------------------------------------------------------------------------


def _span(trace_id: bytes, spec: SpanSpec, parent_id: int | None, remote: bool, state: str) -> bytes:
    out = [_bytes(1, trace_id), _bytes(2, spec.span_id.to_bytes(8, "big"))]
    if state:
        out.append(_str(3, state))
    if parent_id:
        out.append(_bytes(4, parent_id.to_bytes(8, "big")))
    out.append(_str(5, spec.name))
    out.append(_uint(6, SPAN_KIND_CLIENT if spec.client else SPAN_KIND_INTERNAL))
    out.append(_fixed64(7, spec.start_ns))
    out.append(_fixed64(8, spec.end_ns))
    out.append(key_values(9, spec.attributes))
    for event in spec.events:
        out.append(
            _bytes(11, _fixed64(1, event.time_ns) + _str(2, event.name) + key_values(3, event.attributes))
        )
    if spec.error is not None:
        out.append(_bytes(15, _str(2, spec.error) + _uint(3, STATUS_ERROR)))
    flags = FLAG_HAS_IS_REMOTE | (FLAG_IS_REMOTE if remote else 0)
    out.append(_tag(16, _I32) + struct.pack("<I", flags))
    return b"".join(out)


def trace_spans(trace: TraceSpec, parent: Parent | None = None) -> list[bytes]:
    """The encoded spans of one request: the root under ``parent`` (if any), each call
    under the root. With a parent, the trace is the parent's."""
    trace_id = (parent.trace_id if parent else trace.trace_id).to_bytes(16, "big")
    state = parent.trace_state if parent else ""
    spans = [
        _span(trace_id, trace.root, parent.span_id if parent else None, bool(parent and parent.remote), state)
    ]
    spans += [_span(trace_id, call, trace.root.span_id, False, state) for call in trace.calls]
    return spans


def traces_request(resource: Mapping[str, AttrValue], scope: Scope, spans: Sequence[bytes]) -> bytes:
    """An ExportTraceServiceRequest with one resource and one scope."""
    scope_spans = _bytes(1, _scope(scope)) + b"".join(_bytes(2, s) for s in spans)
    resource_spans = _bytes(1, key_values(1, resource)) + _bytes(2, scope_spans)
    return _bytes(1, resource_spans)


# --- metrics ----------------------------------------------------------------------------


class HistogramPoint:
    """One series' running histogram (mutable; a plain class: see spans.py on import cost)."""

    __slots__ = ("attributes", "bounds", "bucket_counts", "count", "high", "low", "total")

    def __init__(
        self, attributes: Mapping[str, AttrValue], bounds: Sequence[float], bucket_counts: list[int]
    ) -> None:
        self.attributes = attributes
        self.bounds = bounds
        self.bucket_counts = bucket_counts
        self.count = 0
        self.total = 0.0
        self.low = float("inf")
        self.high = float("-inf")


class SumPoint:
    """One series' running sum."""

    __slots__ = ("attributes", "value")

    def __init__(self, attributes: Mapping[str, AttrValue], value: float = 0.0) -> None:
        self.attributes = attributes
        self.value = value


class MetricData(NamedTuple):
    name: str
    unit: str
    description: str
    histogram: bool  # else a cumulative sum
    monotonic: bool
    points: Sequence[HistogramPoint | SumPoint]


def _histogram_point(p: HistogramPoint, start_ns: int, now_ns: int) -> bytes:
    out = key_values(9, p.attributes) + _fixed64(2, start_ns) + _fixed64(3, now_ns)
    out += _fixed64(4, p.count) + _double(5, p.total)
    out += _bytes(6, b"".join(struct.pack("<Q", c) for c in p.bucket_counts))
    out += _bytes(7, b"".join(struct.pack("<d", b) for b in p.bounds))
    if p.count:
        out += _double(11, p.low) + _double(12, p.high)
    return out


def _sum_point(p: SumPoint, start_ns: int, now_ns: int) -> bytes:
    return key_values(7, p.attributes) + _fixed64(2, start_ns) + _fixed64(3, now_ns) + _double(4, p.value)


def _metric(m: MetricData, start_ns: int, now_ns: int) -> bytes:
    head = _str(1, m.name) + _str(2, m.description) + _str(3, m.unit)
    temporality = _uint(2, TEMPORALITY_CUMULATIVE)
    if m.histogram:
        points = b"".join(_bytes(1, _histogram_point(p, start_ns, now_ns)) for p in m.points)  # type: ignore[arg-type]
        return head + _bytes(9, points + temporality)
    points = b"".join(_bytes(1, _sum_point(p, start_ns, now_ns)) for p in m.points)  # type: ignore[arg-type]
    return head + _bytes(7, points + temporality + _uint(3, int(m.monotonic)))


def metrics_request(
    resource: Mapping[str, AttrValue], scope: Scope, metrics: Iterable[MetricData], start_ns: int, now_ns: int
) -> bytes:
    """An ExportMetricsServiceRequest: cumulative points from ``start_ns`` to ``now_ns``."""
    body = b"".join(_bytes(2, _metric(m, start_ns, now_ns)) for m in metrics if m.points)
    scope_metrics = _bytes(1, _scope(scope)) + body
    return _bytes(1, _bytes(1, key_values(1, resource)) + _bytes(2, scope_metrics))
