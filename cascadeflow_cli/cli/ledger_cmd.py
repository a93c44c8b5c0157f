"""`cascade ledger copy FROM TO`: move a ledger between backends (a SQLite file path or
``sqlite:///...``, a ``postgresql://...`` URL)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

ledger_app = typer.Typer(help="The ledger itself: copy it between SQLite and PostgreSQL.",
                         no_args_is_help=True)


@ledger_app.command("copy")
def copy(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="The ledger to read: a file path, sqlite:///PATH or "
                                          "postgresql://...")],
    target: Annotated[str, typer.Argument(help="The ledger to write (created and migrated if new); "
                                          "requests already there are skipped.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary.")] = False,
) -> None:
    """Copy every request (with its calls, quality labels and live signals), every batch run
    and every budget from SOURCE to TARGET."""
    from cascadeflow_cli.cli.context import app_context
    from cascadeflow_cli.dburl import parse_location
    from cascadeflow_cli.errors import InputError
    from cascadeflow_cli.ledger.backend import open_store
    from cascadeflow_cli.ledger.copy import copy_ledger

    password_env = app_context(ctx).config.ledger.password_env
    src, dst = (parse_location(x, password_env=password_env) for x in (source, target))
    if src == dst or _same_file(src.path, dst.path):  # a symlink or a/../ too: one file read and written
        raise InputError(f"{src}: source and target are the same ledger")
    if src.path is not None and not src.path.exists():
        raise InputError(f"{src}: no such ledger file")
    # the source is only read: a file or directory this user may not write is opened
    # read-only (it was opened as a writer, which chmod-ed a 0444 file to 0600 and then
    # failed 'cannot write ledger')
    with open_store(src, read_only=True) as reader, open_store(dst) as writer:
        report = copy_ledger(reader, writer)
        waiting = getattr(reader, "journal_waiting", 0) if getattr(reader, "read_only", False) else 0
    if waiting:  # answered requests a read-only source could not take in: not in the copy either
        sys.stderr.write(f"warning: {waiting} answered request(s) waiting in {src}'s journal were not "
                         "copied (the source is read-only); copy again once its owner has run any "
                         "command on it\n")
    if as_json:
        sys.stdout.write(json.dumps({"source": src.display(), "target": dst.display(),
                                     "requests_read": report.requests_read, "requests": report.requests,
                                     "calls": report.calls, "budgets": report.budgets,
                                     "batches": report.tables.get("batches", 0),
                                     "quality_labels": report.tables.get("quality_labels", 0),
                                     "call_signals": report.tables.get("call_signals", 0),
                                     "keys_revoked": report.revoked,
                                     "seconds": round(report.seconds, 3),
                                     "rows_per_second": round(report.rows_per_second)}) + "\n")
        return
    skipped = report.requests_read - report.requests
    extras = ", ".join(f"{n} {table.replace('_', ' ')} row(s)" for table, n in report.tables.items())
    sys.stderr.write(f"copied {report.requests} request(s) with {report.calls} call(s), {extras} and "
                     f"{report.budgets} budget(s) from {src} to {dst} in {report.seconds:.1f} s"
                     f"{f' ({skipped} already there)' if skipped else ''}"
                     f"{f'; {report.revoked} key(s) revoked on the source' if report.revoked else ''}\n")


def _same_file(a: Path | None, b: Path | None) -> bool:
    try:
        return a is not None and b is not None and a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False
