"""`cascade budget set|show|list|rm`: per-user limits and where each user stands."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from cascadeflow_cli.cli.context import app_context, stderr_console, stdout_console

budget_app = typer.Typer(
    help="Per-user budgets: daily, weekly, monthly and total limits in USD.", no_args_is_help=True
)


@budget_app.command("set")
def set_(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="The user.")],
    daily: Annotated[str | None, typer.Option("--daily", help="Limit per calendar day, USD.")] = None,
    weekly: Annotated[
        str | None, typer.Option("--weekly", help="Limit per ISO week (from Monday), USD.")
    ] = None,
    monthly: Annotated[str | None, typer.Option("--monthly", help="Limit per calendar month, USD.")] = None,
    total: Annotated[str | None, typer.Option("--total", help="Limit over all time, USD.")] = None,
) -> None:
    """Set USER's limits (windows not given keep their current limit)."""
    from cascadeflow_cli.ledger.budgets import BudgetConfig, parse_limit, set_budget
    from cascadeflow_cli.money import format_dollars

    given = {"daily": daily, "weekly": weekly, "monthly": monthly, "total": total}
    budget = BudgetConfig(**{w: parse_limit(v, w) for w, v in given.items() if v is not None})
    stored = set_budget(app_context(ctx).ledger(), user, budget)
    limits = ", ".join(f"{w} {format_dollars(v)}" for w, v in stored.limits().items())
    sys.stderr.write(f"budget for {user}: {limits}\n")


@budget_app.command("show")
def show(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="The user.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Limits, spend, what is left and when each window resets, and what the next request gets."""
    from cascadeflow_cli.cli.render.budget import budget_table
    from cascadeflow_cli.ledger.budgets import budget_owner, spelled_user
    from cascadeflow_cli.text import shown_name, user_name
    from cascadeflow_cli.usecases.budget import budget_report

    context = app_context(ctx)
    ledger = context.ledger(read_only=True)
    # a legacy name too, as `rm` takes it; one with spend only under [budgets.default]
    # (no budget of its own) was shown nothing spent
    user = budget_owner(ledger, user) or spelled_user(ledger, user) or user_name(user)
    report = budget_report(ledger, context.config, user)
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
        return
    status, outlook = report.status, report.outlook
    if status.budget is None and not status.team_states:
        sys.stderr.write(
            f"{shown_name(user)} has no budget (and there is no [budgets.default]): "
            "requests are allowed and recorded\n"
        )
        return
    out = stdout_console()
    out.print(budget_table(status))
    if outlook is not None:  # part of the answer: where this period is heading
        out.print(outlook.describe(shown_name(user)), style="bold red" if outlook.alert else None)
    for note in report.notes:
        out.print(f"note: {note}", style="yellow")
    if status.next.message:
        stderr_console().print(status.next.message)


@budget_app.command("list")
def list_(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Every user with a budget of their own."""
    from cascadeflow_cli.cli.render.budget import budgets_table
    from cascadeflow_cli.ledger.budgets import list_budgets
    from cascadeflow_cli.windows import WINDOWS

    rows = list_budgets(app_context(ctx).ledger(read_only=True))
    data: list[dict[str, Any]] = [
        {"user": user, **{w: float(v) if (v := getattr(b, w)) is not None else None for w in WINDOWS}}
        for user, b in rows
    ]
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    if not data:
        sys.stderr.write("no budgets set (`cascade budget set USER --daily 5`)\n")
        return
    stdout_console().print(budgets_table(rows))


@budget_app.command("rm")
def rm(ctx: typer.Context,
       user: Annotated[str, typer.Argument(help="The user (as `budget list` shows it).")]) -> None:
    """Remove USER's own budget (the config's default, if any, applies again)."""
    from cascadeflow_cli.errors import InputError
    from cascadeflow_cli.ledger.budgets import budget_owner, remove_budget
    from cascadeflow_cli.text import shown_name, user_name

    ledger = app_context(ctx).ledger()
    owner = budget_owner(ledger, user)  # as it is ($'alice\r'), or as `list` shows it
    if owner is None or not remove_budget(ledger, owner):
        user_name(user)  # what is wrong with a name that is not there: said as before
        raise InputError(f"{shown_name(user)} has no budget of their own")
    sys.stderr.write(f"removed the budget of {shown_name(owner)}\n")
