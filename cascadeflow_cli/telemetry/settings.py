"""Where telemetry goes and what it may carry: ``[telemetry]`` plus the standard OTEL_*
environment, resolved into one plain value. Imports nothing of OpenTelemetry, so a
command can decide whether telemetry is on without paying for the SDK."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from cascadeflow_cli import __version__
from cascadeflow_cli.config import TelemetryConfig
from cascadeflow_cli.errors import ConfigError
from cascadeflow_cli.telemetry import env_value as _env
from cascadeflow_cli.telemetry import is_requested

DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
PROTOCOLS = ("http/protobuf", "grpc")
DEFAULT_SERVICE_NAME = "cascade"


@dataclass(frozen=True)
class TelemetrySettings:
    """Telemetry that is on: the two signal endpoints and what the spans may say."""

    traces_endpoint: str
    metrics_endpoint: str
    protocol: str = "http/protobuf"
    flush_timeout: float = 2.0
    emit_cost: bool = True
    capture_content: bool = False
    record_user: bool = True
    service_name: str | None = None  # None: OTEL_RESOURCE_ATTRIBUTES names it, or DEFAULT


def resolve(config: TelemetryConfig, env: Mapping[str, str] = os.environ) -> TelemetrySettings | None:
    """The settings, or None when telemetry is off. A bad endpoint or protocol is a
    ConfigError (one line, exit 1) before anything runs."""
    if not is_requested(config, env):
        return None
    protocol = _env(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or _env(env, "OTEL_EXPORTER_OTLP_PROTOCOL")
    protocol = protocol or PROTOCOLS[0]
    if protocol not in PROTOCOLS:
        choices = " or ".join(PROTOCOLS)
        raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported (use {choices})")
    traces, metrics = _endpoints(config, env, protocol)
    for url in {traces, metrics}:
        check_endpoint(url)
    name = _env(env, "OTEL_SERVICE_NAME")
    if name is None and "service.name=" not in (env.get("OTEL_RESOURCE_ATTRIBUTES") or ""):
        name = DEFAULT_SERVICE_NAME
    return TelemetrySettings(
        traces_endpoint=traces,
        metrics_endpoint=metrics,
        protocol=protocol,
        flush_timeout=config.flush_timeout,
        emit_cost=config.emit_cost,
        capture_content=config.capture_content,
        record_user=config.record_user,
        service_name=name,
    )


def _endpoints(config: TelemetryConfig, env: Mapping[str, str], protocol: str) -> tuple[str, str]:
    """``[telemetry] endpoint`` (a base URL) wins, else the per-signal variable (a full
    URL, used as given), else OTEL_EXPORTER_OTLP_ENDPOINT (a base URL), else localhost.
    OTLP/HTTP appends /v1/traces and /v1/metrics to a base URL; gRPC takes it as is."""
    base = config.endpoint or _env(env, "OTEL_EXPORTER_OTLP_ENDPOINT")
    default = DEFAULT_GRPC_ENDPOINT if protocol == "grpc" else DEFAULT_HTTP_ENDPOINT

    def signal(name: str, path: str) -> str:
        if config.endpoint is None and (given := _env(env, f"OTEL_EXPORTER_OTLP_{name}_ENDPOINT")):
            return given
        root = base or default
        return root if protocol == "grpc" else f"{root.rstrip('/')}/{path}"

    return signal("TRACES", "v1/traces"), signal("METRICS", "v1/metrics")


def check_endpoint(url: str) -> None:
    """An http(s) URL with a host and a valid port, else one readable line."""
    from cascadeflow_cli.config.parse import is_http_url

    if not is_http_url(url):
        raise ConfigError(f"telemetry endpoint {url!r} is not an http:// or https:// URL with a host")


def own_resource_attributes(settings: TelemetrySettings) -> dict[str, str]:
    """Our resource attributes: the version, a per-process instance id (short CLI runs each
    start their own cumulative metric series; the id keeps them apart) and our default
    service name unless the environment names one."""
    attributes = {"service.version": __version__, "service.instance.id": uuid.uuid4().hex}
    if settings.service_name and not _env(os.environ, "OTEL_SERVICE_NAME"):
        attributes["service.name"] = settings.service_name
    return attributes


def resource_attributes(settings: TelemetrySettings, env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The whole resource as the SDK's Resource.create makes it, for the exporter that
    does without the SDK: telemetry.sdk.*, then OTEL_RESOURCE_ATTRIBUTES
    (``k=v,k2=v2``, values percent-decoded), then ours, then OTEL_SERVICE_NAME."""
    out = {
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "cascadeflow_cli",
        "telemetry.sdk.version": __version__,
    }
    for item in (env.get("OTEL_RESOURCE_ATTRIBUTES") or "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            out[key.strip()] = unquote(value.strip())
    out.update(own_resource_attributes(settings))
    if name := _env(env, "OTEL_SERVICE_NAME"):
        out["service.name"] = name
    out.setdefault("service.name", DEFAULT_SERVICE_NAME)
    return out
