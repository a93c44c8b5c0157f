"""`cascade import`: history into the ledger, all or nothing, safe to repeat."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from cascadeflow_cli.cli.context import app_context, is_terminal, stderr_console
from cascadeflow_cli.errors import InputError
from cascadeflow_cli.words import count_of


def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="What `cascade export` wrote, or history from "
                                         "elsewhere with at least timestamp,user,model,cost.")],
    fmt: Annotated[str | None, typer.Option("--format", "-f", help="csv, json or jsonl "
                                            "(default: from the extension, else the content).")
                   ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Import ledger rows. Every row is checked first: one bad row aborts with its line
    number and nothing is imported. Rows already in the ledger are skipped."""
    from cascadeflow_cli.ledger.importer import FORMATS
    from cascadeflow_cli.usecases.transfer import import_history

    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if not file.exists():
        raise InputError(f"{file}: no such file")
    if file.is_dir():
        raise InputError(f"{file}: is a directory")
    context = app_context(ctx)
    ledger = context.ledger()
    timezone = context.config.ledger.timezone
    if is_terminal():
        with stderr_console().status("checking…", spinner="dots") as status:
            def progress(phase: str, rows: int) -> None:
                status.update(f"{phase}… {rows:,} requests")

            result = import_history(ledger, file, fmt, timezone=timezone, on_progress=progress)
    else:
        result = import_history(ledger, file, fmt, timezone=timezone)
    if result.ignored_columns:
        sys.stderr.write(f"note: ignored unknown column(s): {', '.join(result.ignored_columns)}\n")
    if as_json:
        sys.stdout.write(json.dumps({
            "file": str(file), "format": result.format, "rows": result.rows,
            "requests": result.requests, "calls": result.calls,
            "imported_requests": result.new_requests, "imported_calls": result.new_calls,
            "skipped_requests": result.skipped_requests,
            "ignored_columns": list(result.ignored_columns),
        }) + "\n")
    skipped = (f"; {result.skipped_requests:,} already in the ledger"
               if result.skipped_requests else "")
    counts = f"{count_of(result.new_requests, 'request')} ({count_of(result.new_calls, 'call')})"
    sys.stderr.write(f"imported {counts} "
                     f"from {file}{skipped}\n")
