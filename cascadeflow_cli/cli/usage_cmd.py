"""`cascade usage`: spend, tokens, requests, draft acceptance and savings, by group."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cascadeflow_cli.cli.context import app_context, stdout_console
from cascadeflow_cli.cli.options import SINCE_HELP, UNTIL_HELP, check_date, check_user_filter, ledger_filter
from cascadeflow_cli.errors import InputError

if TYPE_CHECKING:

    from cascadeflow_cli.ledger.usage import UsageRow

GROUPINGS = ("user", "model", "provider", "domain", "day")


def usage(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", "-u", callback=check_user_filter,
                                             help="Only this user's requests.")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Break down by user, model, provider, "
                                           "domain or day (default: user).")] = None,
    since: Annotated[str | None, typer.Option("--since", callback=check_date, help=SINCE_HELP)] = None,
    until: Annotated[str | None, typer.Option("--until", callback=check_date, help=UNTIL_HELP)] = None,
    total_only: Annotated[bool, typer.Option("--total", help="Only the totals, no breakdown.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Show usage: cost, tokens, requests, draft acceptance rate and savings."""
    from cascadeflow_cli.cli.render.spend import key_name, usage_table
    from cascadeflow_cli.usecases.usage import usage_report

    if by is not None and by not in GROUPINGS:
        raise InputError(f"--by must be one of {', '.join(GROUPINGS)}, got {by!r}")
    if total_only and by is not None:
        raise InputError("--total and --by exclude each other")
    grouping = None if total_only else (by or "user")
    context = app_context(ctx)
    timezone = context.config.ledger.timezone
    flt = ledger_filter(context.reader_user(user), since, until, None, timezone)
    report = usage_report(context.ledger(read_only=True), flt, grouping, timezone)
    if as_json:
        data = {"user": user, "by": grouping, "since": flt.since, "until": flt.until,
                "timezone": timezone, "total": row_json(report.total),
                "groups": [row_json(g, key_name(grouping)) for g in report.groups]}
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        return
    if report.total.requests == 0:
        sys.stderr.write("no requests in the ledger" + (" for that filter" if user or since or until
                                                       else " yet") + "\n")
        return
    stdout_console().print(usage_table(report, bars=sys.stdout.isatty()))


def row_json(row: UsageRow, key: str | None = None) -> dict[str, Any]:
    from cascadeflow_cli.money import usd

    data: dict[str, Any] = {key: row.key} if key else {}
    rate = row.acceptance_rate
    savings_rate = row.savings_rate
    data.update(
        requests=row.requests, calls=row.calls, cost=usd(row.cost_nusd),
        input_tokens=row.input_tokens, output_tokens=row.output_tokens, tokens=row.tokens,
        drafts=row.drafts, drafts_accepted=row.drafts_accepted,
        draft_acceptance_rate=None if rate is None else round(rate, 4),
        savings=usd(row.savings_nusd), verifier_only_cost=usd(row.verifier_only_nusd),
        savings_rate=None if savings_rate is None else round(savings_rate, 4), errors=row.errors,
    )
    quality = row.measured_quality  # issue 9: of the accepted drafts that carry a label
    data.update(labelled_drafts=row.labelled, labelled_good=row.labelled_good,
                measured_quality=None if quality is None else round(quality, 4))
    return data


