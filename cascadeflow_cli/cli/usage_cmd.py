"""`cascade usage`: spend, tokens, requests, draft acceptance and savings, by group."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cascadeflow_cli.cli.app import state
from cascadeflow_cli.cli.context import stdout_console
from cascadeflow_cli.cli.export_cmd import SINCE_HELP, UNTIL_HELP, ledger_filter
from cascadeflow_cli.errors import InputError

if TYPE_CHECKING:
    from rich.table import Table

    from cascadeflow_cli.ledger.usage import UsageReport, UsageRow

GROUPINGS = ("user", "model", "provider", "domain", "day")
BAR_WIDTH = 20
_EIGHTHS = " ▏▎▍▌▋▊▉"


def usage(
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user's requests.")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Break down by user, model, provider, "
                                           "domain or day (default: user).")] = None,
    since: Annotated[str | None, typer.Option("--since", help=SINCE_HELP)] = None,
    until: Annotated[str | None, typer.Option("--until", help=UNTIL_HELP)] = None,
    total_only: Annotated[bool, typer.Option("--total", help="Only the totals, no breakdown.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Show usage: cost, tokens, requests, draft acceptance rate and savings."""
    if by is not None and by not in GROUPINGS:
        raise InputError(f"--by must be one of {', '.join(GROUPINGS)}, got {by!r}")
    if total_only and by is not None:
        raise InputError("--total and --by exclude each other")
    grouping = None if total_only else (by or "user")
    ctx = state()
    timezone = ctx.config.ledger.timezone
    flt = ledger_filter(user, since, until, None, timezone)
    report = ctx.ledger().usage(flt, grouping, timezone)
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


def key_name(grouping: str | None) -> str:
    return "date" if grouping == "day" else (grouping or "key")


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


def bar(value: int, largest: int, width: int = BAR_WIDTH) -> str:
    """A horizontal bar in eighths of a character, ``value`` relative to ``largest``."""
    if largest <= 0 or value <= 0:
        return ""
    eighths = max(1, round(8 * width * value / largest))
    full, rest = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[rest] if rest else "")


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.0f}%"


def _tokens(n: int) -> str:
    for size, suffix in ((10**9, "G"), (10**6, "M"), (10**3, "k")):
        if n >= size:
            return f"{n / size:.1f}{suffix}"
    return str(n)


def usage_table(report: UsageReport, bars: bool) -> Table:
    """Groups (or just the total) with a footer of totals and, on a terminal, a bar of
    each group's share of the cost."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    title = key_name(report.by) if report.groups else "total"
    table = Table(box=box.SIMPLE_HEAD, show_footer=bool(report.groups), pad_edge=False,
                  collapse_padding=True)
    total = report.total
    labelled = total.labelled > 0  # the quality column only where labels exist
    for name, footer in ((title, "total"), *zip(_headers(labelled), _cells(total, labelled), strict=True)):
        # the group's name may wrap at 80 columns; the figures never do
        table.add_column(name, footer=footer, no_wrap=name != title,
                         justify="left" if name == title else "right")
    if bars and report.groups:
        table.add_column("cost share", no_wrap=True)
    rows = report.groups or (total,)
    largest = max(r.cost_nusd for r in rows)
    for r in rows:
        label: Any = "total" if not report.groups else (
            r.key if r.key is not None else Text("(none)", style="dim"))
        cells: list[Any] = [label, *_cells(r, labelled)]
        if bars and report.groups:
            cells.append(Text(bar(r.cost_nusd, largest), style="cyan"))
        table.add_row(*cells)
    return table


_HEADERS = ("requests", "cost", "tokens i/o", "accepted", "savings", "saved")


def _headers(labelled: bool) -> tuple[str, ...]:
    return (*_HEADERS, "quality") if labelled else _HEADERS


def _cells(r: UsageRow, labelled: bool = False) -> list[str]:
    from cascadeflow_cli.money import format_usd

    cells = [f"{r.requests:,}", format_usd(r.cost_nusd),
             f"{_tokens(r.input_tokens)}/{_tokens(r.output_tokens)}", _pct(r.acceptance_rate),
             format_usd(r.savings_nusd), _pct(r.savings_rate)]
    if labelled:  # measured quality of accepted drafts, and how many labels it rests on
        cells.append(f"{_pct(r.measured_quality)} of {r.labelled}" if r.labelled else "-")
    return cells
