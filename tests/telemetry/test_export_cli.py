"""Telemetry end to end: the real `cascade ask`/`batch`/`export --otlp` in a subprocess,
the replay server for the models, and a real OTLP/HTTP receiver on loopback that
decodes the protobuf payloads (tests/telemetry/collector.py)."""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from cascadeflow_cli.telemetry.instruments import DURATION_BUCKETS, TOKEN_BUCKETS
from tests.cli.support import QUERY, REFUSAL, rows, stderr_lines
from tests.conftest import GOOD_ANSWER, CliRunner, assert_one_error_line, config_text
from tests.telemetry.collector import Collector

TOKENS = {"prompt_tokens": 1000, "completion_tokens": 1000}
MINI_COST, BIG_COST = 0.00075, 0.0125  # litellm's list prices for 1000 tokens in and out


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector().start()
    try:
        yield c
    finally:
        c.stop()


def telemetry_cli(
    tmp_path: Path, server: ReplayServer, endpoint: str | None, keys: str = "", extra: str = "",
    flush_timeout: float = 1.0,
) -> CliRunner:
    section = f"\n[telemetry]\nenabled = true\nflush_timeout = {flush_timeout}\n"
    if endpoint is not None:
        section += f'endpoint = "{endpoint}"\n'
    path = tmp_path / "cascadeflow.toml"
    path.write_text(config_text(server.base_url, extra=extra) + section + keys, encoding="utf-8")
    return CliRunner(tmp_path, path, tmp_path / "ledger.db")


@pytest.fixture
def good_mini(server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, **TOKENS))
    server.set_behavior("gpt-4o", ModelBehavior(answer=GOOD_ANSWER, **TOKENS))


def by_name(spans: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        out.setdefault(span["name"], []).append(span)
    return out


def ledger_ns(ts: str) -> int:
    from cascadeflow_cli.clock import parse_ts

    moment = parse_ts(ts)
    return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000


# --- what a request looks like on the wire -----------------------------------------------


@pytest.mark.usefixtures("good_mini")
def test_ask_sends_a_request_span_with_one_client_span_per_call(
    tmp_path: Path, server: ReplayServer, collector: Collector
) -> None:
    cli = telemetry_cli(tmp_path, server, collector.url)
    run = cli("ask", QUERY, "--json", "--user", "alice")
    assert run.code == 0, run.stderr
    assert run.stderr == ""  # delivered: not a word about telemetry
    answer = run.json()
    assert isinstance(answer, dict)
    spans = by_name(collector.spans)  # flushed before the process ended: nothing to wait for
    [root] = spans["cascade.request"]
    [call] = spans["chat gpt-4o-mini"]
    assert root["kind"] == "internal" and call["kind"] == "client"
    assert call["parent_span_id"] == root["span_id"] and root["parent_span_id"] == ""
    assert root["trace_id"] == call["trace_id"] == answer["request_id"]  # found by the ledger's id
    a = call["attributes"]
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.id"].startswith("chatcmpl-")
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["gen_ai.request.max_tokens"] == 1024
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (1000, 1000)
    assert a["gen_ai.usage.cost.amount"] == pytest.approx(MINI_COST)
    assert a["gen_ai.usage.cost.currency"] == "USD"
    assert a["cascade.role"] == "draft" and a["cascade.accepted"] is True
    assert a["cascade.quality.score"] == answer["quality_score"]
    assert "gen_ai.system" not in a  # the old name, replaced by gen_ai.provider.name
    assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a  # content is opt-in
    assert "error.type" not in a and call["status"] == "unset"
    r = root["attributes"]
    assert r["enduser.id"] == "alice"
    assert r["cascade.draft_accepted"] is True and r["cascade.escalated"] is False
    assert r["cascade.chain"] == ("mini",)
    assert r["cascade.enforcement.action"] == "allow"
    assert r["cascade.cost"] == pytest.approx(MINI_COST)
    assert r["cascade.verifier_only_cost"] == pytest.approx(BIG_COST)
    assert r["cascade.savings"] == pytest.approx(BIG_COST - MINI_COST)
    assert root["resource"]["service.name"] == "cascade"
    # real times: the request starts when the ledger says and lasts its recorded latency
    [req] = rows(cli.db, "requests")
    [stored_call] = rows(cli.db, "calls")
    assert root["start"] == ledger_ns(str(req["ts"]))
    assert root["end"] - root["start"] == pytest.approx(float(req["latency_ms"]) * 1e6, abs=1000)
    assert call["end"] - call["start"] == pytest.approx(float(stored_call["latency_ms"]) * 1e6, abs=1000)
    assert root["start"] <= call["start"] <= call["end"] <= root["end"]


@pytest.mark.usefixtures("good_mini")
def test_metrics_use_the_conventions_names_units_and_buckets(
    tmp_path: Path, server: ReplayServer, collector: Collector
) -> None:
    cli = telemetry_cli(tmp_path, server, collector.url)
    assert cli("ask", QUERY, "--user", "alice").code == 0
    points = collector.metrics
    tokens = [p for p in points if p["name"] == "gen_ai.client.token.usage"]
    assert {p["attributes"]["gen_ai.token.type"]: p["sum"] for p in tokens} == {"input": 1000, "output": 1000}
    assert all(p["kind"] == "histogram" and p["unit"] == "{token}" for p in tokens)
    assert tokens[0]["bounds"] == list(TOKEN_BUCKETS)
    [duration] = [p for p in points if p["name"] == "gen_ai.client.operation.duration"]
    assert duration["unit"] == "s" and duration["bounds"] == list(DURATION_BUCKETS)
    assert duration["attributes"]["gen_ai.request.model"] == "gpt-4o-mini"
    assert 0 < duration["sum"] < 5  # seconds, not milliseconds
    [cost] = [p for p in points if p["name"] == "cascade.cost"]
    assert cost["value"] == pytest.approx(MINI_COST) and cost["monotonic"] is True
    assert cost["attributes"] == {
        "enduser.id": "alice",
        "gen_ai.request.model": "gpt-4o-mini",
        "cascade.role": "draft",
    }
    [savings] = [p for p in points if p["name"] == "cascade.savings"]
    assert savings["value"] == pytest.approx(BIG_COST - MINI_COST)


def test_an_escalation_and_a_failed_call(tmp_path: Path, server: ReplayServer, collector: Collector) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=REFUSAL, **TOKENS))
    server.set_behavior("gpt-4o", ModelBehavior(answer=GOOD_ANSWER, **TOKENS))
    cli = telemetry_cli(tmp_path, server, collector.url)
    assert cli("ask", QUERY).code == 0
    spans = by_name(collector.spans)
    [root] = spans["cascade.request"]
    assert root["attributes"]["cascade.escalated"] is True
    assert root["attributes"]["cascade.chain"] == ("mini", "big")
    [draft] = spans["chat gpt-4o-mini"]
    [verifier] = spans["chat gpt-4o"]
    assert draft["attributes"]["cascade.accepted"] is False
    assert verifier["attributes"]["cascade.role"] == "verifier"
    assert draft["end"] <= verifier["start"]  # one after the other, as they ran

    server.set_behavior("gpt-4o", ModelBehavior(status=400))
    failed = cli("ask", QUERY)
    assert failed.code == 2
    spans = by_name(collector.spans)
    bad = [s for s in spans["chat gpt-4o"] if s["status"] == "error"]
    assert len(bad) == 1
    assert bad[0]["attributes"]["error.type"] == "ProviderBadRequestError"
    assert "gen_ai.usage.input_tokens" not in bad[0]["attributes"]
    roots = [s for s in spans["cascade.request"] if s["status"] == "error"]
    assert roots and roots[0]["attributes"]["error.type"] == "ProviderBadRequestError"


@pytest.mark.usefixtures("good_mini")
def test_privacy_switches(tmp_path: Path, server: ReplayServer, collector: Collector) -> None:
    keys = "record_user = false\nemit_cost = false\ncapture_content = true\n"
    cli = telemetry_cli(tmp_path, server, collector.url, keys)
    assert cli("ask", QUERY, "--user", "alice").code == 0
    everything = json.dumps([collector.spans, collector.metrics], default=str)
    assert "alice" not in everything and "enduser.id" not in everything
    assert "cost" not in everything and "savings" not in everything
    [call] = by_name(collector.spans)["chat gpt-4o-mini"]
    sent = json.loads(call["attributes"]["gen_ai.input.messages"])
    assert sent == [{"role": "user", "parts": [{"type": "text", "content": QUERY}]}]
    got = json.loads(call["attributes"]["gen_ai.output.messages"])
    assert got == [
        {"role": "assistant", "parts": [{"type": "text", "content": GOOD_ANSWER}], "finish_reason": "stop"}
    ]


def test_a_budget_refusal_is_a_span_event(tmp_path: Path, server: ReplayServer, collector: Collector) -> None:
    server.set_behavior(
        "gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, prompt_tokens=10, completion_tokens=100)
    )
    prices = "input_cost_per_million = 0.0\noutput_cost_per_million = 10\n"
    path = tmp_path / "cascadeflow.toml"
    path.write_text(
        config_text(server.base_url, mini_extra=prices, big_extra=prices, extra="max_tokens = 100")
        + f'\n[budgets]\nmode = "block"\n[telemetry]\nendpoint = "{collector.url}"\nenabled = true\n'
    )
    cli = CliRunner(tmp_path, path, tmp_path / "ledger.db")
    assert cli("budget", "set", "carol", "--daily", "0.0015").code == 0
    assert cli("ask", QUERY, "--user", "carol", "--models", "mini").code == 0
    blocked = cli("ask", QUERY, "--user", "carol", "--models", "mini")
    assert blocked.code == 3  # telemetry changes no exit code
    assert_one_error_line(blocked.stderr)
    refused = [s for s in collector.spans if s["attributes"].get("cascade.status") == "blocked"]
    assert len(refused) == 1
    [event] = refused[0]["events"]
    assert event["name"] == "cascade.budget.refused"
    assert "carol's daily budget" in event["attributes"]["cascade.enforcement.message"]
    assert event["time"] == refused[0]["start"]


# --- the standard environment ------------------------------------------------------------


@pytest.mark.usefixtures("good_mini")
def test_the_otel_environment_turns_it_on_and_names_the_service(cli: CliRunner, collector: Collector) -> None:
    run = cli(
        "ask",
        QUERY,
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
        OTEL_SERVICE_NAME="support-bot",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment.name=test,team=ml",
    )
    assert run.code == 0, run.stderr
    resource = collector.spans[0]["resource"]
    assert resource["service.name"] == "support-bot"
    assert resource["deployment.environment.name"] == "test" and resource["team"] == "ml"
    assert {s["name"] for s in collector.spans} == {"cascade.request", "chat gpt-4o-mini"}
    assert "/v1/metrics" in collector.posts


@pytest.mark.usefixtures("good_mini")
def test_off_by_default_sends_nothing(cli: CliRunner, collector: Collector) -> None:
    assert cli("ask", QUERY).code == 0
    assert collector.posts == []


# --- collectors that misbehave cost at most the flush timeout, and one line -----------------


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.usefixtures("good_mini")
@pytest.mark.parametrize("mode", [400, 503, "hang", "absent"])
def test_a_bad_collector_changes_neither_answer_nor_exit_code(
    tmp_path: Path, server: ReplayServer, mode: str | int
) -> None:
    collector = Collector(mode="ok" if mode == "absent" else mode).start()
    try:
        url = f"http://127.0.0.1:{dead_port()}" if mode == "absent" else collector.url
        cli = telemetry_cli(tmp_path, server, url)
        run = cli("ask", QUERY)
    finally:
        collector.stop()
    assert run.code == 0
    assert run.stdout == GOOD_ANSWER + "\n"
    lines = stderr_lines(run.stderr)
    assert len(lines) == 2, run.stderr  # the summary, and one warning
    assert lines[1].startswith("warning: telemetry: 2 of 2 spans not delivered to ")
    assert "Traceback" not in run.stderr
    if mode == "hang":
        assert "timeout" in lines[1] or "gave up waiting" in lines[1]
    assert len(rows(cli.db, "requests")) == 1  # the ledger is what it would be without telemetry


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com", "http://:4318", "http://localhost:99999"])
def test_an_invalid_endpoint_is_one_line_before_anything_runs(
    tmp_path: Path, server: ReplayServer, url: str
) -> None:
    cli = telemetry_cli(tmp_path, server, url)
    run = cli("ask", QUERY)
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert "telemetry.endpoint" in run.stderr  # the config's key: refused as the config is read
    assert server.request_count() == 0 and rows(cli.db, "requests") == []
    shown = cli("config", "show")  # it passed `config show` (hostile-13)
    assert shown.code == 1 and "is not an http:// or https:// URL with a host" in shown.stderr


def hide_the_sdk(tmp_path: Path) -> str:
    """A PYTHONPATH on which `opentelemetry.sdk` cannot be imported, as without [otel]."""
    fake = tmp_path / "no-otel" / "opentelemetry" / "sdk"
    fake.mkdir(parents=True, exist_ok=True)
    (fake / "__init__.py").write_text("raise ImportError('no sdk', name='opentelemetry.sdk')\n")
    return str(tmp_path / "no-otel")


@pytest.mark.usefixtures("good_mini")
def test_without_the_sdk_ask_batch_and_backfill_still_export_over_http(
    tmp_path: Path, server: ReplayServer, collector: Collector
) -> None:
    cli = telemetry_cli(tmp_path, server, collector.url)
    no_sdk = hide_the_sdk(tmp_path)
    run = cli("ask", QUERY, PYTHONPATH=no_sdk)  # OTLP/HTTP is encoded here: no SDK needed
    assert run.code == 0 and run.stdout == GOOD_ANSWER + "\n" and "warning" not in run.stderr, run.stderr
    assert [s["name"] for s in collector.spans] == ["cascade.request", "chat gpt-4o-mini"]
    rows_in = tmp_path / "in.jsonl"
    rows_in.write_text(json.dumps({"id": 1, "query": QUERY}) + "\n")
    batch = cli("batch", str(rows_in), "-o", str(tmp_path / "out.jsonl"), PYTHONPATH=no_sdk)
    assert batch.code == 0 and "warning" not in batch.stderr, batch.stderr
    assert len(collector.spans) == 4
    assert len(collector.posts) == 4  # traces and metrics of ask and of batch
    exported = cli("export", "--otlp", PYTHONPATH=no_sdk)  # the backfill over OTLP/HTTP: no SDK either
    assert exported.code == 0, exported.stderr
    assert exported.stderr.strip() == f"exported 2 requests (4 spans) to {collector.url}/v1/traces"
    assert collector.posts[4:] == ["/v1/traces"] and len(collector.spans) == 8
    over_grpc = cli("export", "--otlp", PYTHONPATH=no_sdk, OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    assert over_grpc.code == 1  # gRPC is the SDK's: one line naming what to install
    assert_one_error_line(over_grpc.stderr)
    assert "[otel]" in over_grpc.stderr or "opentelemetry-exporter-otlp-proto-grpc" in over_grpc.stderr
    assert len(collector.posts) == 5


# --- batch and backfill ----------------------------------------------------------------------


@pytest.mark.usefixtures("good_mini")
def test_batch_exports_every_row(tmp_path: Path, server: ReplayServer, collector: Collector) -> None:
    cli = telemetry_cli(tmp_path, server, collector.url)
    rows_in = tmp_path / "in.jsonl"
    rows_in.write_text(
        "".join(
            json.dumps({"id": i, "query": f"{QUERY} ({i})", "user": f"u{i % 3}"}) + "\n" for i in range(40)
        )
    )
    run = cli("batch", str(rows_in), "-o", str(tmp_path / "out.jsonl"), "-c", "4")
    assert run.code == 0, run.stderr
    assert "warning" not in run.stderr
    roots = by_name(collector.spans)["cascade.request"]
    assert len(roots) == 40 and len(collector.spans) == 80
    ids = {str(r["id"]) for r in rows(cli.db, "requests")}
    assert {s["trace_id"] for s in roots} == ids
    assert {s["attributes"]["enduser.id"] for s in roots} == {"u0", "u1", "u2"}
    assert all(
        s["attributes"]["cascade.external_id"].endswith(f":{i}")
        for i, s in enumerate(
            sorted(roots, key=lambda s: int(s["attributes"]["cascade.external_id"].split(":")[-1]))
        )
    )


@pytest.mark.usefixtures("good_mini")
def test_export_otlp_sends_history_with_its_original_timestamps(
    tmp_path: Path, server: ReplayServer, collector: Collector
) -> None:
    live = Collector().start()
    try:
        cli = telemetry_cli(tmp_path, server, live.url)
        assert cli("ask", QUERY, "--user", "alice").code == 0
        assert cli("ask", QUERY, "--user", "bob").code == 0
    finally:
        live.stop()
    run = cli(
        "export",
        "--otlp",
        "--user",
        "alice",
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
        CASCADE_CONFIG=str(write_plain_config(tmp_path, server)),
    )
    assert run.code == 0, run.stderr
    assert run.stderr.strip() == f"exported 1 request (2 spans) to {collector.url}/v1/traces"
    assert "/v1/metrics" not in collector.posts  # history goes as spans only
    [alice] = [r for r in rows(cli.db, "requests") if r["user"] == "alice"]
    [root] = by_name(collector.spans)["cascade.request"]
    assert root["start"] == ledger_ns(str(alice["ts"])) and root["trace_id"] == alice["id"]
    # the same ids as the live export: a backend sees the same trace, not a copy
    key = lambda s: (s["trace_id"], s["span_id"], s["parent_span_id"], s["name"], s["start"], s["end"])  # noqa: E731
    assert sorted(map(key, collector.spans)) == sorted(
        key(s) for s in live.spans if s["trace_id"] == alice["id"]
    )


def write_plain_config(tmp_path: Path, server: ReplayServer) -> Path:
    path = tmp_path / "plain.toml"
    path.write_text(config_text(server.base_url), encoding="utf-8")
    return path


@pytest.mark.usefixtures("good_mini")
def test_export_otlp_to_a_refusing_collector_fails_in_one_line(tmp_path: Path, server: ReplayServer) -> None:
    refusing = Collector(mode=400).start()
    try:
        cli = telemetry_cli(tmp_path, server, None)
        assert cli("ask", QUERY, OTEL_SDK_DISABLED="true").code == 0
        run = cli("export", "--otlp", OTEL_EXPORTER_OTLP_ENDPOINT=refusing.url)
    finally:
        refusing.stop()
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert "400" in run.stderr
    conn = sqlite3.connect(cli.db)
    assert conn.execute("select count(*) from requests").fetchone()[0] == 1  # the ledger is untouched


@pytest.mark.usefixtures("good_mini")
def test_a_hung_collector_during_a_batch_drops_spans_and_says_how_many(
    tmp_path: Path, server: ReplayServer
) -> None:
    hung = Collector(mode="hang").start()
    try:
        cli = telemetry_cli(tmp_path, server, hung.url)
        rows_in = tmp_path / "in.jsonl"
        rows_in.write_text(
            "".join(json.dumps({"id": i, "query": f"{QUERY} ({i})"}) + "\n" for i in range(40))
        )
        # a small queue, as a long batch meets the default one: memory stays bounded, spans drop
        run = cli(
            "batch",
            str(rows_in),
            "-o",
            str(tmp_path / "out.jsonl"),
            OTEL_BSP_MAX_QUEUE_SIZE="8",
            OTEL_BSP_MAX_EXPORT_BATCH_SIZE="4",
        )
    finally:
        hung.stop()
    assert run.code == 0, run.stderr
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 40
    [warning] = [line for line in stderr_lines(run.stderr) if line.startswith("warning:")]
    assert warning.startswith("warning: telemetry: 80 of 80 spans not delivered")
    dropped = int(warning.split(" dropped from a full queue")[0].rsplit("; ", 1)[1].replace(",", ""))
    assert 0 < dropped <= 80 - 8


@pytest.mark.usefixtures("good_mini")
def test_grpc_without_its_exporter_names_the_package(
    tmp_path: Path, server: ReplayServer, collector: Collector
) -> None:
    fake = tmp_path / "no-grpc" / "opentelemetry" / "exporter" / "otlp" / "proto" / "grpc"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ImportError('no grpc', name='opentelemetry.exporter.otlp.proto.grpc')\n"
    )
    cli = telemetry_cli(tmp_path, server, collector.url)
    run = cli("ask", QUERY, PYTHONPATH=str(tmp_path / "no-grpc"), OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    assert run.code == 0 and run.stdout == GOOD_ANSWER + "\n"
    [warning] = [line for line in stderr_lines(run.stderr) if line.startswith("warning:")]
    assert "opentelemetry-exporter-otlp-proto-grpc" in warning


@pytest.mark.usefixtures("good_mini")
def test_a_sampler_that_drops_every_trace_is_not_a_delivery_failure(
    tmp_path: Path, server: ReplayServer, collector: Collector
) -> None:
    cli = telemetry_cli(tmp_path, server, collector.url)
    run = cli("ask", QUERY, OTEL_TRACES_SAMPLER="always_off")
    assert run.code == 0 and "warning" not in run.stderr, run.stderr
    assert collector.spans == []
    assert any(p["name"] == "gen_ai.client.token.usage" for p in collector.metrics)  # metrics still flow


def test_export_otlp_since_sends_only_later_history_at_its_own_times(
    tmp_path: Path, server: ReplayServer, collector: Collector
) -> None:
    """Last month's history, imported from elsewhere, backfilled from a date on."""
    history = tmp_path / "history.csv"
    history.write_text(
        "timestamp,user,model,cost,input_tokens,output_tokens\n"
        "2026-03-01T09:00:00Z,alice,gpt-4o-mini,0.0001,10,5\n"
        "2026-03-10T09:30:00.125Z,bob,gpt-4o,0.002,200,50\n"
        "2026-03-20T18:00:00Z,alice,gpt-4o-mini,0.0003,30,15\n",
        encoding="utf-8",
    )
    cli = telemetry_cli(tmp_path, server, None)
    assert cli("import", str(history), OTEL_SDK_DISABLED="true").code == 0
    # a span queue that holds one request at a time: the backfill flushes before it overflows
    run = cli("export", "--otlp", "--since", "2026-03-05", OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
              OTEL_BSP_MAX_QUEUE_SIZE="3")
    assert run.code == 0, run.stderr
    assert run.stderr.strip() == f"exported 2 requests (4 spans) to {collector.url}/v1/traces"
    roots = sorted(by_name(collector.spans)["cascade.request"], key=lambda s: s["start"])
    assert [r["start"] for r in roots] == [
        ledger_ns("2026-03-10T09:30:00.125Z"),
        ledger_ns("2026-03-20T18:00:00Z"),
    ]
    assert [r["attributes"]["enduser.id"] for r in roots] == ["bob", "alice"]
    calls = {s["parent_span_id"]: s for s in collector.spans if s["kind"] == "client"}
    assert calls[roots[0]["span_id"]]["attributes"]["gen_ai.usage.input_tokens"] == 200
    assert calls[roots[0]["span_id"]]["attributes"]["gen_ai.request.model"] == "gpt-4o"
