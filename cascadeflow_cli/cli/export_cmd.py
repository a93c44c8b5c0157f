"""`cascade export`: the ledger, one row per model call, as CSV, JSON or JSONL."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from cascadeflow_cli.cli.context import app_context
from cascadeflow_cli.cli.options import SINCE_HELP, UNTIL_HELP, check_date, check_user_filter, ledger_filter
from cascadeflow_cli.errors import InputError

if TYPE_CHECKING:
    from cascadeflow_cli.cli.context import AppContext
    from cascadeflow_cli.ledger.export import LedgerFilter

def export(
    ctx: typer.Context,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV with a header row (the default).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array of row objects.")] = False,
    as_jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON object per line.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE (else stdout); "
                                                "its extension picks the format when no flag does.")
                      ] = None,
    user: Annotated[str | None, typer.Option("--user", "-u", callback=check_user_filter,
                                             help="Only this user's requests.")] = None,
    since: Annotated[str | None, typer.Option("--since", callback=check_date, help=SINCE_HELP)] = None,
    until: Annotated[str | None, typer.Option("--until", callback=check_date, help=UNTIL_HELP)] = None,
    model: Annotated[str | None, typer.Option("--model", help="Only calls to this model "
                                              "(our name or the provider's id).")] = None,
    bom: Annotated[bool, typer.Option("--bom", help="Start a CSV with a UTF-8 byte-order mark "
                                      "(Excel then reads accents correctly).")] = False,
    otlp: Annotated[bool, typer.Option("--otlp", help="Send the requests as OpenTelemetry spans to the "
                                       "[telemetry] endpoint (else OTEL_EXPORTER_OTLP_*), with their "
                                       "original timestamps.")] = False,
) -> None:
    """Export the ledger, one row per model call (columns: docs/ledger-columns.md)."""
    from cascadeflow_cli.usecases.transfer import export_rows

    context = app_context(ctx)
    if otlp:
        _export_otlp(context, as_csv or as_json or as_jsonl or output is not None or bom or model is not None,
                     ledger_filter(user, since, until, None, context.config.ledger.timezone))
        return
    fmt = _format(as_csv, as_json, as_jsonl, output)
    context.refuse_ledger_as_output(output)  # `-o ledger.db --csv` replaced the ledger with its export
    flt = ledger_filter(context.reader_user(user), since, until, model, context.config.ledger.timezone)
    ledger = context.ledger(read_only=True)
    try:
        with _destination(output) as out:
            if bom and fmt == "csv":
                out.write("\ufeff")
            count = export_rows(ledger, out, fmt, flt)
    except BrokenPipeError:  # `cascade export | head`: the reader left, nothing is wrong
        _silence_stdout()
        return
    where = f" to {output}" if output else ""
    sys.stderr.write(f"exported {count:,} row{'s' if count != 1 else ''}{where}\n")


def _format(as_csv: bool, as_json: bool, as_jsonl: bool, output: Path | None) -> str:
    chosen = [name for name, on in (("csv", as_csv), ("json", as_json), ("jsonl", as_jsonl)) if on]
    if len(chosen) > 1:
        raise InputError("choose one of --csv, --json, --jsonl")
    suffix = output.suffix.lower() if output else ""
    implied = _SUFFIXES.get(suffix)
    if chosen:
        if implied is not None and implied != chosen[0]:
            raise InputError(f"--{chosen[0]} contradicts the name {output} (a {suffix} file)")
        return chosen[0]
    if suffix and implied is None:  # x.xlsx would silently get CSV under that name
        raise InputError(f"{output}: no export format for {suffix} files (name it .csv, .json or "
                         ".jsonl, or choose the format with --csv, --json or --jsonl)")
    return implied or "csv"


_SUFFIXES = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@contextlib.contextmanager
def _destination(output: Path | None) -> Iterator[TextIO]:
    """stdout, or a temporary file beside OUTPUT renamed into place only when the whole
    export is written (an interrupted export never leaves a truncated file behind); a FIFO
    or a device is written into (files.py)."""
    if output is None:
        out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="",
                               write_through=False)
        try:
            yield out
            out.flush()
        finally:
            with contextlib.suppress(BrokenPipeError, ValueError):
                out.detach()
        return
    if output.is_dir():
        raise InputError(f"{output}: is a directory")
    from cascadeflow_cli.files import written_whole

    try:
        with written_whole(output, "w", encoding="utf-8", newline="") as fh:
            yield fh
    except OSError as exc:
        raise InputError(f"{output}: cannot write: {exc.strerror or exc}") from None


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _export_otlp(context: AppContext, file_options: bool, flt: LedgerFilter) -> None:
    """History as spans (issue 15's backfill), whether or not [telemetry] is enabled."""
    from cascadeflow_cli.usecases.transfer import export_spans

    if file_options:
        raise InputError("--otlp sends spans to a collector: it takes only --user, --since and --until")
    result = export_spans(context.config, context.ledger, flt)
    plural = "s" if result.requests != 1 else ""
    sys.stderr.write(f"exported {result.requests:,} request{plural} ({result.spans:,} spans) to "
                     f"{result.endpoint}\n")
