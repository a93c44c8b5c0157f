"""`cascade key create|list|revoke`: the API keys `cascade serve` accepts."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from cascadeflow_cli.cli.context import app_context, stdout_console
from cascadeflow_cli.cli.options import check_user_filter
from cascadeflow_cli.money import MAX_COUNT

key_app = typer.Typer(help="API keys for `cascade serve` (each belongs to a user).", no_args_is_help=True)


@key_app.command("create")
def create(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="The user the key's requests are charged to.")],
    name: Annotated[str | None, typer.Option("--name", help="A label for the key.")] = None,
    rpm: Annotated[
        int | None,
        typer.Option("--rpm", min=1, max=MAX_COUNT,
                     help="Requests per minute this key may make (across every server on the ledger)."),
    ] = None,
    daily: Annotated[str | None, typer.Option("--daily", help="The key's own limit a day, USD.")] = None,
    weekly: Annotated[str | None, typer.Option("--weekly", help="The key's own limit a week, USD.")] = None,
    monthly: Annotated[str | None, typer.Option("--monthly", help="The key's own limit a month.")] = None,
    total: Annotated[str | None, typer.Option("--total", help="The key's own limit in all, USD.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Create a key for USER and print it once: only its hash is stored. A budget given
    here is the key's own, checked besides USER's (whose budget pays for it too)."""
    from cascadeflow_cli.ledger.budgets import BudgetConfig, parse_limit
    from cascadeflow_cli.ledger.keys import create_key

    given = {"daily": daily, "weekly": weekly, "monthly": monthly, "total": total}
    budget = BudgetConfig(**{w: parse_limit(v, w) for w, v in given.items() if v is not None})
    key, stored = create_key(app_context(ctx).ledger(), user, name, rpm, budget)
    if as_json:
        sys.stdout.write(json.dumps({"user": stored.user, "key": key, "prefix": stored.prefix}) + "\n")
        return
    sys.stdout.write(key + "\n")
    sys.stderr.write(f"key {stored.prefix} for {stored.user}: shown once, store it now\n")


@key_app.command("list")
def list_(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", "-u", callback=check_user_filter,
                                             help="Only this user's keys.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The keys: prefix, user, name, when created and revoked (never the key)."""
    from rich.table import Table

    from cascadeflow_cli.ledger.keys import list_keys

    keys = list_keys(app_context(ctx).ledger(read_only=True), user)
    if as_json:
        sys.stdout.write(json.dumps([k.to_json() for k in keys], indent=2) + "\n")
        return
    if not keys:
        sys.stderr.write("no keys (create one with `cascade key create USER`)\n")
        return
    from cascadeflow_cli.money import format_usd, nanos_from_usd
    from cascadeflow_cli.text import shown_name

    table = Table("prefix", "user", "name", "created", "revoked", "rpm", "budget")
    for k in keys:
        limits = k.budget.limits() if k.budget else {}
        budget = ", ".join(f"{w} {format_usd(nanos_from_usd(v))}" for w, v in limits.items())
        rpm = str(k.rpm) if k.rpm else ""
        # shown_name: a name an older version stored with a control character is spelled out
        table.add_row(k.prefix, shown_name(k.user), shown_name(k.name or ""), k.created_at,
                      k.revoked_at or "", rpm, budget)
    stdout_console().print(table)


@key_app.command("revoke")
def revoke(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="The key's prefix, as `cascade key list` shows it.")],
) -> None:
    """Revoke a key: from now on its requests get 401."""
    from cascadeflow_cli.ledger.keys import revoke_key

    stored = revoke_key(app_context(ctx).ledger(), prefix.strip())
    sys.stderr.write(f"key {stored.prefix} of {stored.user} revoked\n")
