"""`cascade logs`: recent requests from the ledger, newest first."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from cascadeflow_cli.cli.context import app_context, stdout_console
from cascadeflow_cli.cli.options import check_date, check_user_filter


def logs(
    ctx: typer.Context,
    count: Annotated[int, typer.Option("-n", "--count", min=0, help="How many (0 for all).")] = 3,
    user: Annotated[str | None, typer.Option("--user", "-u", callback=check_user_filter,
                                             help="Only this user's requests.")] = None,
    since: Annotated[str | None, typer.Option("--since", callback=check_date,
                                              help="Only since DATE (YYYY-MM-DD or ISO).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array of request objects.")] = False,
) -> None:
    """Show recent requests, newest first."""
    from cascadeflow_cli.cli.render import logs_table
    from cascadeflow_cli.clock import format_ts
    from cascadeflow_cli.dates import parse_since

    context = app_context(ctx)
    since_ts = format_ts(parse_since(since, context.config.ledger.timezone)) if since else None
    # more than SQLite's or PostgreSQL's LIMIT can hold is all of them (it was a 'datatype
    # mismatch' that read as a damaged ledger)
    limit = count if 0 < count < 2**63 else None
    rows = context.ledger(read_only=True).recent_requests(limit, user=context.reader_user(user),
                                                          since=since_ts)
    if as_json:
        from cascadeflow_cli.engine.views import request_json

        sys.stdout.write(json.dumps([request_json(r) for r in rows], ensure_ascii=False, indent=2) + "\n")
        return
    if not rows:
        suffix = " for that filter" if user or since else ""
        sys.stderr.write(f"no requests in the ledger yet{suffix}\n")
        return
    stdout_console().print(logs_table(rows, context.config.ledger.timezone))
