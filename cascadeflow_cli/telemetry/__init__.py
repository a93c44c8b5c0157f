"""OpenTelemetry export of requests and calls in the GenAI semantic conventions (opt-in:
``[telemetry] enabled = true`` or the OTEL_EXPORTER_OTLP_* environment; the ``[otel]``
extra). This package root imports nothing of OpenTelemetry: ``open_sink`` does, when
telemetry is on.

Whether telemetry is on is decided here, with nothing but ``os``: every `ask` and `batch`
asks, and the settings module (a dataclass, uuid) costs a few ms to import, so it is
loaded on first use of ``resolve`` / ``TelemetrySettings`` (PEP 562)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.errors import MissingExtraError

if TYPE_CHECKING:
    from cascadeflow_cli.config import TelemetryConfig
    from cascadeflow_cli.telemetry.settings import TelemetrySettings, resolve
    from cascadeflow_cli.telemetry.sink import TelemetrySink

EXTRA_HINT = "install the [otel] extra: pip install 'cascadeflow-cli[otel]'"

__all__ = ["EXTRA_HINT", "TelemetrySettings", "env_value", "is_requested", "open_sink", "resolve"]


def env_value(env: Mapping[str, str], name: str) -> str | None:
    """A variable's value, stripped; None when unset or blank."""
    value = env.get(name, "").strip()
    return value or None


def is_requested(config: TelemetryConfig, env: Mapping[str, str] = os.environ) -> bool:
    """On when ``[telemetry] enabled`` or an OTLP endpoint is in the environment; the
    standard OTEL_SDK_DISABLED=true turns it off whatever else says."""
    if (env_value(env, "OTEL_SDK_DISABLED") or "").lower() == "true":
        return False
    return config.enabled or bool(
        env_value(env, "OTEL_EXPORTER_OTLP_ENDPOINT") or env_value(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def __getattr__(name: str) -> Any:
    if name in ("TelemetrySettings", "resolve"):
        from cascadeflow_cli.telemetry import settings

        return getattr(settings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_sink(settings: TelemetrySettings, *, metrics: bool = True) -> TelemetrySink:
    """The SDK wired to ``settings``; MissingExtraError (naming the extra) without it."""
    try:
        from cascadeflow_cli.telemetry.sink import TelemetrySink

        return TelemetrySink(settings, metrics=metrics)  # imports the exporter it needs
    except ImportError as exc:
        missing = exc.name or "opentelemetry"
        if settings.protocol == "grpc" and "grpc" in missing:
            raise MissingExtraError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs opentelemetry-exporter-otlp-proto-grpc "
                "(pip install opentelemetry-exporter-otlp-proto-grpc)"
            ) from None
        raise MissingExtraError(f"telemetry is on but OpenTelemetry is not installed: {EXTRA_HINT}") from None
