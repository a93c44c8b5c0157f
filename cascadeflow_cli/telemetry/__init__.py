"""OpenTelemetry export of requests and calls in the GenAI semantic conventions (opt-in:
``[telemetry] enabled = true`` or the OTEL_EXPORTER_OTLP_* environment; the ``[otel]``
extra). This package root imports nothing of OpenTelemetry: ``open_sink`` does, when
telemetry is on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cascadeflow_cli.errors import MissingExtraError
from cascadeflow_cli.telemetry.settings import TelemetrySettings, is_requested, resolve

if TYPE_CHECKING:
    from cascadeflow_cli.telemetry.sink import TelemetrySink

EXTRA_HINT = "install the [otel] extra: pip install 'cascadeflow-cli[otel]'"

__all__ = ["EXTRA_HINT", "TelemetrySettings", "is_requested", "open_sink", "resolve"]


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
