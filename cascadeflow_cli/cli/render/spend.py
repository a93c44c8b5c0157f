"""Spend tables: `cascade usage` (by group, with bars of each group's share) and
`cascade anomalies`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cascadeflow_cli.text import shown_name

if TYPE_CHECKING:
    from cascadeflow_cli.analytics.anomaly import Anomaly
    from cascadeflow_cli.cli.layout import FittedTable, TableOrRecords
    from cascadeflow_cli.ledger.usage import UsageReport, UsageRow


BAR_WIDTH = 20


_EIGHTHS = " ▏▎▍▌▋▊▉"


def key_name(grouping: str | None) -> str:
    return "date" if grouping == "day" else (grouping or "key")


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


def usage_table(report: UsageReport, bars: bool) -> TableOrRecords:
    """Groups (or just the total) with a footer of totals and, on a terminal, a bar of
    each group's share of the cost; on a screen too narrow for it, one "name: value"
    line a field (layout.records)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from cascadeflow_cli.cli.layout import TableOrRecords

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
    fields: list[list[Any]] = []
    for r in rows:
        label: Any = "total" if not report.groups else (
            Text("(none)", style="dim") if r.key is None
            else shown_name(r.key) if report.by == "user" else r.key)
        cells: list[Any] = [label, *_cells(r, labelled)]
        fields.append(cells[: len(_headers(labelled)) + 1])
        if bars and report.groups:
            cells.append(Text(bar(r.cost_nusd, largest), style="cyan"))
        table.add_row(*cells)
    footer = ["total", *_cells(total, labelled)] if report.groups else None
    return TableOrRecords(table, [title, *_headers(labelled)], fields, footer)


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


def anomalies_table(found: list[Anomaly], sensitivity: str) -> FittedTable:
    from rich.text import Text

    from cascadeflow_cli.cli.render import fitted_table

    colours = {"high": "bold red", "medium": "yellow", "low": ""}
    rows = []
    for a in found:
        rows.append([a.date.isoformat(), shown_name(a.user) if a.user else "*", a.model or "-", a.kind,
                     Text(a.severity, style=colours.get(a.severity, "")), _usd(a.expected),
                     _usd(a.actual), f"{a.score:+.1f}", Text(a.description)])
    headers = [("date", "left"), ("user", "left"), ("model", "left"), ("kind", "left"),
               ("severity", "left"), ("expected", "right"), ("actual", "right"), ("score", "right"),
               ("why", "left")]
    caption = (f"{len(found)} anomal{'y' if len(found) == 1 else 'ies'} at {sensitivity} sensitivity "
               "(thresholds fitted to each series' own noise); score: robust z (MADs from the usual "
               "level for that weekday)")
    return fitted_table(headers, rows, flexible="why", caption=caption)


def _usd(value: float) -> str:
    from cascadeflow_cli.money import format_dollars

    # to the ledger's nano-dollar, as the description's: a shift's new level of 1.39e-17
    # (float noise of an empty stretch) was shown as "$0.0000000000000000139"
    return format_dollars(round(value, 9))
