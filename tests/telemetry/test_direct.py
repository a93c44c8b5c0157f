"""The one-shot exporter (telemetry/direct.py + wire.py, no SDK) against the SDK's sink:
the same records must arrive at a real OTLP/HTTP receiver, decoded by opentelemetry-proto,
as the same spans and metric points. And a caller's traceparent becomes the parent."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from cascadeflow_cli.config import TelemetryConfig
from cascadeflow_cli.ledger.records import LaterCall
from cascadeflow_cli.telemetry import TelemetrySettings, resolve
from cascadeflow_cli.telemetry.background import BackgroundSink
from cascadeflow_cli.telemetry.context import Parent, parent_from_traceparent
from cascadeflow_cli.telemetry.direct import DirectSink, sampled
from cascadeflow_cli.telemetry.instruments import TOKEN_BUCKETS
from cascadeflow_cli.telemetry.sink import TelemetrySink
from tests.ledger.test_history import record
from tests.telemetry.collector import Collector

TS = "2026-11-01T10:00:00.250000Z"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def collectors() -> Iterator[tuple[Collector, Collector]]:
    a, b = Collector().start(), Collector().start()
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def settings_for(url: str) -> TelemetrySettings:
    s = resolve(TelemetryConfig(enabled=True, endpoint=url, flush_timeout=5.0, capture_content=True), {})
    assert s is not None
    return s


def records() -> list[Any]:
    ok = [record(i, f"u{i % 2}", TS) for i in range(4)]
    bad = replace(ok[1].calls[1], status="error", error_type="ProviderTimeoutError", error="timed out")
    failed = replace(ok[1], id="req-failed", status="error", error="timed out", calls=(ok[1].calls[0], bad))
    return [*ok, failed]


def comparable_spans(c: Collector) -> list[dict[str, Any]]:
    out = []
    for span in sorted(c.spans, key=lambda s: s["span_id"]):
        span = {k: v for k, v in span.items() if k != "resource"}
        out.append(span)
    return out


def comparable_metrics(c: Collector) -> list[dict[str, Any]]:
    """The latest point of each series: cumulative points may be sent more than once (the
    one-shot sink sends as the records come), and the last one holds the totals."""
    latest = {(p["name"], tuple(sorted(p["attributes"].items()))): p for p in c.metrics}
    return [latest[key] for key in sorted(latest)]


@pytest.mark.parametrize("ours_is", ["one-shot", "stream"])
def test_our_encoder_sends_what_the_sdk_sends(collectors: tuple[Collector, Collector], ours_is: str) -> None:
    ours, sdk = collectors
    settings = settings_for(ours.url)
    mine = DirectSink(settings) if ours_is == "one-shot" else BackgroundSink(settings)
    theirs = TelemetrySink(settings_for(sdk.url))
    for r in records():
        mine.record(r)
        theirs.record(r)
    assert mine.finish() is None and theirs.flush().ok
    assert len(ours.spans) == 13  # 5 requests, 8 calls
    assert comparable_spans(ours) == comparable_spans(sdk)
    assert comparable_metrics(ours) == comparable_metrics(sdk)
    tokens = [p for p in ours.metrics if p["name"] == "gen_ai.client.token.usage"]
    assert tokens and all(p["bounds"] == list(map(float, TOKEN_BUCKETS)) for p in tokens)

    def own(resource: dict[str, Any]) -> dict[str, Any]:  # telemetry.sdk.* names who encoded it
        skip = ("telemetry.sdk.", "service.instance.id")
        return {k: v for k, v in resource.items() if not k.startswith(skip)}

    assert own(ours.spans[0]["resource"]) == own(sdk.spans[0]["resource"])
    assert ours.spans[0]["resource"]["telemetry.sdk.name"] == "cascadeflow_cli"
    assert ours.headers[0]["content-type"] == "application/x-protobuf"


def test_a_callers_traceparent_is_the_parent_on_both_paths(collectors: tuple[Collector, Collector]) -> None:
    ours, sdk = collectors
    parent = parent_from_traceparent(TRACEPARENT, "vendor=abc")
    assert parent is not None
    direct, theirs = DirectSink(settings_for(ours.url)), TelemetrySink(settings_for(sdk.url))
    direct.record(records()[1], parent)
    theirs.record(records()[1], parent)
    assert direct.finish() is None and theirs.flush().ok
    for c in (ours, sdk):
        root = next(s for s in c.spans if s["name"] == "cascade.request")
        assert {s["trace_id"] for s in c.spans} == {"4bf92f3577b34da6a3ce929d0e0e4736"}
        assert root["parent_span_id"] == "00f067aa0ba902b7"
        assert root["flags"] & 0x300 == 0x300  # the parent is remote
        assert all(s["parent_span_id"] == root["span_id"] for s in c.spans if s is not root)
        assert {s["trace_state"] for s in c.spans} == {"vendor=abc"}


@pytest.mark.parametrize("traced", [False, True])
def test_a_later_call_hangs_under_its_requests_span_on_both_paths(
    collectors: tuple[Collector, Collector], traced: bool
) -> None:
    """A shadow call, sent after its request: one CLIENT span in the request's trace (the
    caller's, when the request came with a traceparent), under the request's span; the
    SDK's path and ours send the same."""
    ours, sdk = collectors
    parent = parent_from_traceparent(TRACEPARENT, "vendor=abc") if traced else None
    request = records()[0]
    shadow_call = replace(request.calls[0], id=f"{request.id}-1", seq=1, role="shadow", model="big",
                          model_id="openai/gpt-4o", cost_nusd=700, latency_ms=250.0)
    later = LaterCall(request.id, request.user, request.query, shadow_call, time.time_ns())
    direct, theirs = DirectSink(settings_for(ours.url)), TelemetrySink(settings_for(sdk.url))
    for sink in (direct, theirs):
        sink.record(request, parent)
        sink.record(later, parent)
    assert direct.finish() is None and theirs.flush().ok
    assert comparable_spans(ours) == comparable_spans(sdk)
    root = next(s for s in ours.spans if s["name"] == "cascade.request")
    [mine] = [s for s in ours.spans if s["attributes"].get("cascade.role") == "shadow"]
    assert (mine["name"], mine["kind"], mine["parent_span_id"]) == ("chat gpt-4o", "client", root["span_id"])
    assert mine["trace_id"] == root["trace_id"]
    assert not traced or mine["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert mine["flags"] & 0x300 == 0x100 and mine["trace_state"] == ("vendor=abc" if traced else "")
    assert mine["end"] - mine["start"] == 250_000_000
    savings = [p["value"] for p in comparable_metrics(ours) if p["name"] == "cascade.savings"]
    assert savings == [(request.savings_nusd - 700) / 1e9]  # the shadow's cost comes off the savings


def test_a_caller_that_did_not_sample_means_no_spans_but_metrics() -> None:
    c = Collector().start()
    try:
        sink = DirectSink(settings_for(c.url))
        sink.record(records()[0], parent_from_traceparent(TRACEPARENT[:-2] + "00"))
        assert sink.finish() is None
    finally:
        c.stop()
    assert c.spans == [] and c.metrics


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero span id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # v00 has four fields
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short trace id
    ],
)
def test_an_invalid_traceparent_starts_a_trace_of_its_own(header: str | None) -> None:
    assert parent_from_traceparent(header) is None


def test_a_traceparent_round_trips_and_a_later_version_is_read() -> None:
    parent = parent_from_traceparent(TRACEPARENT.upper())
    assert parent == Parent(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, True)
    assert parent.traceparent == TRACEPARENT
    later = parent_from_traceparent("01" + TRACEPARENT[2:] + "-what-comes-next")
    assert later is not None and later.span_id == parent.span_id


def test_the_samplers_of_the_environment() -> None:
    low, high = 1 << 60, (1 << 64) - 1  # the ratio sampler looks at the low 64 bits
    assert sampled(high, None, {}) and not sampled(high, None, {"OTEL_TRACES_SAMPLER": "always_off"})
    ratio = {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"}
    assert sampled(low, None, ratio) and not sampled(high, None, ratio)
    no = Parent(1, 1, sampled=False)
    assert not sampled(low, no, {}) and sampled(low, no, {"OTEL_TRACES_SAMPLER": "always_on"})


def test_headers_and_gzip_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=ml,authorization=Bearer%20abc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
    c = Collector().start()
    try:
        sink = DirectSink(settings_for(c.url))
        sink.record(records()[0])
        assert sink.finish() is None
    finally:
        c.stop()
    by_path = dict(zip(c.posts, c.headers, strict=True))  # the two signals go at once, in any order
    traces, metrics = by_path["/v1/traces"], by_path["/v1/metrics"]
    assert traces["x-team"] == "ml" and traces["authorization"] == "Bearer abc"
    assert traces["content-encoding"] == "gzip" and "content-encoding" not in metrics
    assert len(c.spans) == 2


def test_the_send_starts_with_the_record_not_at_exit(collectors: tuple[Collector, Collector]) -> None:
    """`ask` prints its answer and closes the ledger while the spans are on their way."""
    c, _ = collectors
    sink = DirectSink(settings_for(c.url))
    sink.record(records()[0])
    assert len(c.wait_for(2, timeout=5.0)) == 2  # arrived before finish() was called
    assert sink.finish() is None


def silent_listener() -> socket.socket:
    """A collector that takes the connection (the kernel's backlog) and never reads or answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock


@pytest.mark.parametrize("kind", ["silent", "refused"])
def test_a_dead_collector_costs_at_most_the_flush_timeout_once(kind: str) -> None:
    silent = silent_listener()
    port = silent.getsockname()[1]
    if kind == "refused":
        silent.close()  # nothing listens there now: the connection is refused
    try:
        settings = replace(settings_for(f"http://127.0.0.1:{port}"), flush_timeout=1.0)
        sink = DirectSink(settings)
        first, second = records()[:2]
        began = time.monotonic()
        sink.record(first)
        time.sleep(0.6)  # the command goes on (prints, closes the ledger); the clock runs
        sink.record(second)  # a second request waits on the same deadline, not a new one
        line = sink.finish()
        spent = time.monotonic() - began
    finally:
        silent.close()
    spans = 2 + len(first.calls) + len(second.calls)
    assert line is not None and line.startswith(f"telemetry: {spans} of {spans} spans not delivered to ")
    if kind == "silent":
        assert "gave up waiting for the collector" in line
        # the one deadline, from the first send: a second one would end past 1.6 s
        assert 0.95 <= spent < 1.45
    else:
        assert "ConnectionRefusedError" in line and spent < 1.45
