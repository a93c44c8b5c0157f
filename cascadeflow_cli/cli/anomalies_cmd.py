"""`cascade anomalies`: days that cost far more or less than usual, and lasting shifts,
per user and per model."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from cascadeflow_cli.cli.context import app_context, stdout_console
from cascadeflow_cli.cli.options import check_date, check_user_filter
from cascadeflow_cli.errors import InputError

if TYPE_CHECKING:
    pass

SENSITIVITIES = ("low", "medium", "high")


def anomalies(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", "-u", callback=check_user_filter,
                                             help="Only this user (default: every "
                                             "user, and every model).")] = None,
    sensitivity: Annotated[str, typer.Option("--sensitivity", "-s", help="low, medium or high: about "
                                             "1, 3 or 10 false alarms per 1,000 ordinary days, "
                                             "on each series' own noise.")] = "medium",
    since: Annotated[str | None, typer.Option("--since", callback=check_date, help="Report days from DATE "
                                              "(YYYY-MM-DD or ISO; default: all history).")] = None,
    until: Annotated[str | None, typer.Option("--until", callback=check_date, help="Report days up to DATE "
                                              "(default: yesterday, the last whole day).")] = None,
    min_change: Annotated[float, typer.Option("--min-change", min=0.0, help="Smallest change in USD "
                                              "worth reporting.")] = 0.5,
    models: Annotated[bool, typer.Option("--models/--no-models", help="Also look at each model's "
                                         "spend.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array of anomalies.")] = False,
) -> None:
    """Find spend anomalies: spikes, drops and level shifts, each with what was expected,
    what happened and why it was flagged."""
    from cascadeflow_cli.dates import parse_local_day
    from cascadeflow_cli.usecases.anomalies import scan_anomalies

    if sensitivity not in SENSITIVITIES:
        raise InputError(f"--sensitivity must be one of {', '.join(SENSITIVITIES)}, got {sensitivity!r}")
    context = app_context(ctx)
    ledger, config = context.ledger(read_only=True), context.config
    timezone = config.ledger.timezone
    first = parse_local_day(since, timezone) if since else None
    last = parse_local_day(until, timezone) if until else None
    scan = scan_anomalies(ledger, config, sensitivity=sensitivity, min_change=min_change,
                          user=context.reader_user(user),
                          since=first, until=last, models=models)
    found = scan.found
    if as_json:
        sys.stdout.write(json.dumps([a.to_json() for a in found], ensure_ascii=False, indent=2) + "\n")
    elif not found:
        scope = f" for {user}" if user else ""
        sys.stderr.write(f"no anomalies{scope} at {sensitivity} sensitivity"
                         f"{' since ' + first.isoformat() if first else ''} up to {scan.last.isoformat()}\n")
    else:
        from cascadeflow_cli.cli.render.spend import anomalies_table

        stdout_console().print(anomalies_table(found, sensitivity))
    # on stderr, after the list: stdout stays the list (a JSON array for scripts)
    for note in scan.notes:
        sys.stderr.write(f"note: {note}\n")


