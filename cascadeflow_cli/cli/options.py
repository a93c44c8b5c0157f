"""Options several commands share: the ledger filter (`--user/--since/--until/--model`),
the `--domain` check."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from cascadeflow_cli.ledger.export import LedgerFilter

SINCE_HELP = "Only from DATE on (YYYY-MM-DD or ISO 8601; dates are in the ledger's time zone)."
UNTIL_HELP = ("Only before this moment; a plain date includes that whole day "
              "(YYYY-MM-DD or ISO 8601).")


def check_domain(value: str | None) -> str | None:
    """`--domain` callback: "" and "  " were falsy downstream, so `ask` routed by detection
    and `quality check` scored as prose, as if no --domain was given."""
    if value is not None and not value.strip():
        raise typer.BadParameter("the domain is empty")
    return value


def check_user_filter(value: str | None) -> str | None:
    """`--user` of the read commands: "" was falsy downstream, so `logs --user ''` said
    "no requests in the ledger yet" of a full ledger, export wrote none and forecast
    read everyone's spend as that of the user asked about."""
    if value is not None and not value.strip():
        raise typer.BadParameter("the user name is empty")
    return value


def check_date(value: str | None) -> str | None:
    """`--since/--until/--as-of`: "" was taken as no date at all (every row)."""
    if value is not None and not value.strip():
        raise typer.BadParameter("the date is empty (use YYYY-MM-DD or an ISO 8601 date-time)")
    return value


def ledger_filter(user: str | None, since: str | None, until: str | None, model: str | None,
                  timezone: str) -> LedgerFilter:
    """The rows `--user/--since/--until/--model` select (dates in the ledger's time zone)."""
    from cascadeflow_cli.clock import format_ts
    from cascadeflow_cli.dates import empty_range, parse_since, parse_until
    from cascadeflow_cli.ledger.export import LedgerFilter

    since_ts = format_ts(parse_since(since, timezone)) if since else None
    until_ts = format_ts(parse_until(until, timezone)) if until else None
    if since_ts and until_ts and until_ts <= since_ts:
        raise empty_range(since or "", until or "")
    return LedgerFilter(user=user, since=since_ts, until=until_ts, model=model)
