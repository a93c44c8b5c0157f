"""Telemetry settings from `[telemetry]` and the OTEL_* environment (pure), and the
start-up rule: with telemetry off, a command imports nothing of OpenTelemetry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cascadeflow_cli.config import TelemetryConfig, parse_config
from cascadeflow_cli.errors import ConfigError
from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from cascadeflow_cli.telemetry import resolve
from tests.conftest import GOOD_ANSWER, config_text

ON = TelemetryConfig(enabled=True)


def test_off_unless_asked() -> None:
    assert resolve(TelemetryConfig(), {}) is None
    assert resolve(ON, {"OTEL_SDK_DISABLED": "true"}) is None
    assert resolve(TelemetryConfig(), {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"})


def test_endpoints_config_then_signal_variable_then_base_variable() -> None:
    s = resolve(ON, {})
    assert s and (s.traces_endpoint, s.metrics_endpoint) == (
        "http://localhost:4318/v1/traces",
        "http://localhost:4318/v1/metrics",
    )
    s = resolve(
        ON,
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:9/x",
        },
    )
    assert s and (s.traces_endpoint, s.metrics_endpoint) == ("http://t:9/x", "http://c:4318/v1/metrics")
    s = resolve(
        TelemetryConfig(enabled=True, endpoint="https://mine:4318"),
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:9/x"},
    )
    assert s and s.traces_endpoint == "https://mine:4318/v1/traces"
    s = resolve(ON, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert s and s.protocol == "grpc" and s.traces_endpoint == "http://localhost:4317"


def test_service_name_default_yields_to_the_environment() -> None:
    assert resolve(ON, {}).service_name == "cascade"  # type: ignore[union-attr]
    assert resolve(ON, {"OTEL_SERVICE_NAME": "bot"}).service_name == "bot"  # type: ignore[union-attr]
    named = resolve(ON, {"OTEL_RESOURCE_ATTRIBUTES": "service.name=x"})
    assert named is not None and named.service_name is None


@pytest.mark.parametrize(
    "env", [{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"}]
)
def test_bad_protocol_or_endpoint_is_a_config_error(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        resolve(ON, env)


def test_config_keys_are_checked() -> None:
    t = parse_config("[telemetry]\nenabled = true\nflush_timeout = 0.5\nrecord_user = false\n").telemetry
    assert (t.enabled, t.flush_timeout, t.record_user, t.emit_cost, t.capture_content) == (
        True,
        0.5,
        False,
        True,
        False,
    )
    for bad in ("enabled = 1", "flush_timeout = -1", "colour = 'red'"):
        with pytest.raises(ConfigError, match="telemetry"):
            parse_config(f"[telemetry]\n{bad}\n")


@pytest.mark.parametrize("enabled", [False, True])
@pytest.mark.parametrize("command", ["ask", "batch"])
def test_ask_and_batch_never_import_opentelemetry_over_otlp_http(
    tmp_path: Path, server: ReplayServer, command: str, enabled: bool
) -> None:
    """They encode OTLP/HTTP themselves (telemetry/wire.py); the SDK is for gRPC and the backfill."""
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    config = tmp_path / "c.toml"
    # an unreachable collector: the point is what gets imported, and the flush is bounded
    section = '\n[telemetry]\nenabled = true\nendpoint = "http://127.0.0.1:9"\nflush_timeout = 0.2\n'
    config.write_text(config_text(server.base_url) + (section if enabled else ""))
    (tmp_path / "in.jsonl").write_text('{"id": 1, "query": "hi there"}\n')
    args = ["ask", "hi there"] if command == "ask" else ["batch", "in.jsonl", "-o", "out.jsonl"]
    code = (
        "import sys, json\nfrom cascadeflow_cli.cli.app import main\n"
        f"args = ['--config', {str(config)!r}, '--db', {str(tmp_path / 'l.db')!r}, *{args!r}]\n"
        "try:\n    main(args)\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('opentelemetry'))))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.splitlines()[-1])
    assert loaded == [], loaded
    assert enabled is ("telemetry" in config.read_text())
