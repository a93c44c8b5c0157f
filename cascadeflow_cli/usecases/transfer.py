"""History in and out of the ledger: `cascade import`, `cascade export` (files) and
`cascade export --otlp` (spans to a collector)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from cascadeflow_cli.config import AppConfig
    from cascadeflow_cli.ledger.db import Ledger
    from cascadeflow_cli.ledger.export import LedgerFilter
    from cascadeflow_cli.ledger.importer import ImportResult
    from cascadeflow_cli.telemetry.backfill import BackfillResult


def import_history(ledger: Ledger, file: Path, fmt: str | None, *, timezone: str,
                   on_progress: Callable[[str, int], None] | None = None) -> ImportResult:
    """Every row of ``file`` checked first, then all imported in one go (or none);
    rows already in the ledger are skipped."""
    from cascadeflow_cli.ledger.importer import import_file

    return import_file(ledger, file, fmt, timezone=timezone, on_progress=on_progress)


def export_rows(ledger: Ledger, out: TextIO, fmt: str, flt: LedgerFilter) -> int:
    """The filtered ledger, one row per model call, written to ``out``; the row count."""
    from cascadeflow_cli.ledger.export import write_rows

    return write_rows(ledger.export_rows(fmt, flt), out, fmt)


def export_spans(config: AppConfig, open_ledger: Callable[[], Ledger], flt: LedgerFilter) -> BackfillResult:
    """The filtered requests as OpenTelemetry spans with their original timestamps, to
    the [telemetry] endpoint (else OTEL_EXPORTER_OTLP_*), whether or not telemetry is on.
    The ledger is opened only once the endpoint is known to be a good one."""
    from dataclasses import replace

    from cascadeflow_cli.telemetry import resolve
    from cascadeflow_cli.telemetry.backfill import backfill

    settings = resolve(replace(config.telemetry, enabled=True), {**os.environ, "OTEL_SDK_DISABLED": ""})
    assert settings is not None
    return backfill(settings, open_ledger().iter_records(flt))
