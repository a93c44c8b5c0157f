"""Issue 15 through `cascade serve`: a caller's W3C traceparent makes the request's span
a child of the caller's span, in the caller's trace; without one, the span starts a trace.
The spans go to a real OTLP/HTTP receiver on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cascadeflow_cli.replay.server import ModelBehavior
from tests.cli.support import QUERY, wait_until
from tests.conftest import GOOD_ANSWER
from tests.telemetry.collector import Collector

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector().start()
    try:
        yield c
    finally:
        c.stop()


def test_the_request_span_continues_the_callers_trace(stack_factory: object, collector: Collector) -> None:
    stack = stack_factory(extra=f'\n[telemetry]\nenabled = true\nendpoint = "{collector.url}"\n')  # type: ignore[operator]
    stack.replay.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    client = stack.client()
    messages = [{"role": "user", "content": QUERY}]
    traced = client.chat.completions.create(
        model="cascade", messages=messages, extra_headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"}
    )
    untraced = client.chat.completions.create(model="cascade", messages=messages)

    def requests() -> list[dict]:
        return [s for s in collector.spans if s["name"] == "cascade.request"]

    wait_until(lambda: len(requests()) >= 2, timeout=30)
    spans = [s for s in collector.spans if s["name"] == "cascade.request"]
    continued = [s for s in spans if s["trace_id"] == TRACE_ID]
    assert len(continued) == 1, (traced.id, [s["trace_id"] for s in spans])
    assert continued[0]["parent_span_id"] == CALLER_SPAN
    [fresh] = [s for s in spans if s["trace_id"] != TRACE_ID]
    assert fresh["parent_span_id"] in ("", None) and untraced.id


def test_a_shadow_call_joins_the_callers_trace_under_the_requests_span(
    stack_factory: object, collector: Collector
) -> None:
    # the shadow runs in a thread of its own after the answer went out: its span must still
    # land in the trace the caller's traceparent named, under the request's span
    from cascadeflow_cli.engine import shadow

    stack = stack_factory(  # type: ignore[operator]
        extra=f'\n[quality]\nshadow_rate = 1.0\n\n[telemetry]\nenabled = true\nendpoint = "{collector.url}"\n'
    )
    stack.replay.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    answer = stack.client().chat.completions.create(
        model="cascade", messages=[{"role": "user", "content": QUERY}],
        extra_headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"},
    )
    assert answer.cascade["draft_accepted"]  # type: ignore[attr-defined]
    assert shadow.wait_pending(30) == 0
    def shadows() -> list[dict]:
        return [s for s in collector.spans if s["attributes"].get("cascade.role") == "shadow"]

    wait_until(lambda: bool(shadows()), timeout=30)
    [request] = [s for s in collector.spans if s["name"] == "cascade.request"]
    [mine] = shadows()
    assert mine["trace_id"] == request["trace_id"] == TRACE_ID
    assert mine["parent_span_id"] == request["span_id"] and request["parent_span_id"] == CALLER_SPAN
