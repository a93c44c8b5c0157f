"""OTLP over gRPC (the SDK's exporter, when installed) to a real gRPC receiver on
loopback: `ask` and `batch` deliver the same GenAI spans and metrics as over HTTP,
decoded by opentelemetry-proto, with no warning."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from cascadeflow_cli.replay.server import ReplayServer
from tests.cli.support import QUERY, stderr_lines
from tests.conftest import GOOD_ANSWER
from tests.telemetry.collector import Collector
from tests.telemetry.test_export_cli import TOKENS, by_name, good_mini, telemetry_cli  # noqa: F401

grpc = pytest.importorskip("grpc")
pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc.trace_exporter")

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc  # noqa: E402
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc  # noqa: E402


class GrpcCollector:
    """The OTLP trace and metrics services on 127.0.0.1; what arrives is decoded as the
    HTTP receiver (tests/telemetry/collector.py) decodes it."""

    def __init__(self) -> None:
        self.decoded = Collector()  # never started: only its decoding and its lists
        decoded = self.decoded

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                decoded._traces(request.SerializeToString())
                return trace_service_pb2.ExportTraceServiceResponse()

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                decoded._metrics(request.SerializeToString())
                return metrics_service_pb2.ExportMetricsServiceResponse()

        self.server = grpc.server(ThreadPoolExecutor(4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self.server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop(0)


@pytest.fixture
def receiver() -> Iterator[GrpcCollector]:
    r = GrpcCollector()
    try:
        yield r
    finally:
        r.stop()


def over_grpc(tmp_path: Path, server: ReplayServer, receiver: GrpcCollector, *args: str) -> str:
    """Run the command with OTLP over gRPC: exit 0 and no warning line; its stdout. The SDK's
    gRPC import counts against flush_timeout and took over 1 s on 2 cores at load 10 (CI,
    2026-12-04): a live receiver answers at once, so a wider timeout costs nothing here."""
    cli = telemetry_cli(tmp_path, server, receiver.url, flush_timeout=10.0)
    run = cli(*args, OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    assert run.code == 0, run.stderr
    assert not [line for line in stderr_lines(run.stderr) if line.startswith("warning:")], run.stderr
    return run.stdout


@pytest.mark.usefixtures("good_mini")
def test_ask_over_grpc_sends_the_genai_spans_and_metrics(
    tmp_path: Path, server: ReplayServer, receiver: GrpcCollector
) -> None:
    assert over_grpc(tmp_path, server, receiver, "ask", QUERY) == GOOD_ANSWER + "\n"
    spans = by_name(receiver.decoded.spans)
    [root] = spans["cascade.request"]
    [call] = spans["chat gpt-4o-mini"]
    assert call["kind"] == "client" and call["parent_span_id"] == root["span_id"]
    a = call["attributes"]
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini" and a["cascade.role"] == "draft"
    assert a["gen_ai.usage.input_tokens"] == TOKENS["prompt_tokens"]
    assert a["gen_ai.usage.output_tokens"] == TOKENS["completion_tokens"]
    assert root["attributes"]["cascade.draft_accepted"] is True
    names = {m["name"] for m in receiver.decoded.metrics}
    assert {"gen_ai.client.token.usage", "gen_ai.client.operation.duration", "cascade.cost"} <= names


@pytest.mark.usefixtures("good_mini")
def test_batch_over_grpc_sends_every_row(
    tmp_path: Path, server: ReplayServer, receiver: GrpcCollector
) -> None:
    rows = "".join(f'{{"id": "r{i}", "query": "{QUERY} ({i})"}}\n' for i in range(12))
    (tmp_path / "in.jsonl").write_text(rows, encoding="utf-8")
    over_grpc(tmp_path, server, receiver, "batch", "in.jsonl", "-o", "out.jsonl")
    roots = by_name(receiver.decoded.spans)["cascade.request"]
    external = sorted(r["attributes"]["cascade.external_id"].split(":", 1)[1] for r in roots)
    assert external == sorted(f"r{i}" for i in range(12))
