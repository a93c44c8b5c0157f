"""The telemetry thread: records handed over from any thread reach a real OTLP/HTTP
receiver; a full hand-over queue drops and counts, never blocks the caller."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from cascadeflow_cli.config import TelemetryConfig
from cascadeflow_cli.telemetry import TelemetrySettings, background, resolve
from cascadeflow_cli.telemetry.background import BackgroundSink
from tests.ledger.test_history import record
from tests.telemetry.collector import Collector


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector().start()
    try:
        yield c
    finally:
        c.stop()


def settings_for(url: str, flush_timeout: float = 5.0) -> TelemetrySettings:
    s = resolve(TelemetryConfig(enabled=True, endpoint=url, flush_timeout=flush_timeout), {})
    assert s is not None
    return s


def test_records_from_many_threads_all_arrive(collector: Collector) -> None:
    sink = BackgroundSink(settings_for(collector.url))
    records = [record(i, f"u{i % 3}", "2026-11-01T10:00:00.000000Z") for i in range(60)]
    threads = [
        threading.Thread(target=lambda part=records[k::4]: [sink.record(r) for r in part]) for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sink.finish() is None
    roots = [s for s in collector.spans if s["name"] == "cascade.request"]
    assert sorted(s["attributes"]["cascade.request.id"] for s in roots) == sorted(r.id for r in records)
    assert len(collector.spans) == sum(1 + len(r.calls) for r in records)


def test_a_full_queue_drops_and_counts(collector: Collector, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background, "MAX_PENDING", 5)
    sink = BackgroundSink(settings_for(collector.url))
    for i in range(50):  # far quicker than the SDK starts: the thread takes none of them yet
        sink.record(record(i, "u", "2026-11-01T10:00:00.000000Z"))
    line = sink.finish()
    assert line is not None and "45 requests not sent (the telemetry queue was full)" in line
    assert len([s for s in collector.spans if s["name"] == "cascade.request"]) == 5
