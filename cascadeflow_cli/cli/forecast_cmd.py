"""`cascade forecast`: what the next days (and this month's budget) will cost."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cascadeflow_cli.cli.context import app_context, stdout_console
from cascadeflow_cli.cli.options import check_date, check_user_filter
from cascadeflow_cli.errors import InputError
from cascadeflow_cli.text import shown_name
from cascadeflow_cli.words import count_of

if TYPE_CHECKING:
    from rich.console import Console

    from cascadeflow_cli.analytics.forecast import CostPrediction

MAX_HORIZON = 366


def forecast(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", "-u", callback=check_user_filter,
                                             help="Forecast this user's spend "
                                             "(default: everyone's).")] = None,
    horizon: Annotated[int, typer.Option("--horizon", min=1, max=MAX_HORIZON,
                                         help="Days to forecast.")] = 30,
    as_of: Annotated[str | None, typer.Option("--as-of", callback=check_date,
                                              help="Forecast as if today were DATE "
                                              "(YYYY-MM-DD): history before it, forecast from it.")] = None,
    confidence: Annotated[float, typer.Option("--confidence", min=0.5, max=0.99,
                                              help="Level of the interval.")] = 0.9,
    plot: Annotated[Path | None, typer.Option("--plot", help="Also draw the chart to FILE.png "
                                              "(needs the [plot] extra: matplotlib).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the forecast as JSON.")] = False,
) -> None:
    """Forecast spend: the next days' total with a calibrated interval, and the risk of
    exceeding the user's budget this month."""
    from cascadeflow_cli.dates import parse_day
    from cascadeflow_cli.usecases.forecast import forecast_spend

    context = app_context(ctx)
    day = parse_day(as_of, "--as-of") if as_of else None
    prediction = forecast_spend(context.ledger(read_only=True), context.config,
                                user=context.reader_user(user), horizon=horizon,
                                as_of=day, confidence=confidence)
    if plot is not None:
        write_png(prediction, plot, user)
    if as_json:
        sys.stdout.write(json.dumps(prediction.to_json(user), ensure_ascii=False, indent=2) + "\n")
        return
    console = stdout_console()
    render(console, prediction, user)


# --- human output -------------------------------------------------------------------


def render(console: Console, p: CostPrediction, user: str | None) -> None:
    from rich.text import Text

    who = shown_name(user) if user else "all users"
    last = p.as_of + timedelta(days=p.horizon_days - 1)
    console.print(Text(f"Forecast for {who}: {p.as_of.isoformat()} to {last.isoformat()} "
                       f"({p.horizon_days} days)", style="bold"))
    for note in p.notes:
        console.print(Text(f"  note: {note}", style="yellow"))
    if p.method in ("none", "zero"):
        console.print(f"  expected spend  {_usd(0.0)}")
        _render_budget(console, p, user)
        return
    if p.short_history:
        days = count_of(p.history_days, "day")
        console.print(Text(f"  SHORT HISTORY: only {days} of data; treat the figures "
                           "below as a rough naive estimate", style="bold yellow"))
    pct = round(100 * p.confidence)
    console.print(f"  expected spend  {_usd(p.median)} (median; mean {_usd(p.mean)})")
    console.print(f"  {pct}% interval    {_usd(p.lower)} to {_usd(p.upper)}")
    history = count_of(p.history_days, "day")
    console.print(Text(f"  method          {p.method}; {history} of history", style="dim"))
    _render_budget(console, p, user)
    _render_chart(console, p)


def _render_budget(console: Console, p: CostPrediction, user: str | None) -> None:
    from rich.text import Text

    if p.budget is None:
        if user is not None:
            console.print(Text("  budget          none set (no risk to compute)", style="dim"))
        return
    o = p.budget
    period = o.period_end.isoformat() if o.window == "total" else \
        f"{o.period_start.isoformat()} to {o.period_end.isoformat()}"
    limit = _usd(o.limit)
    console.print(f"  budget          {o.window} {limit} ({period}): spent {_usd(o.spent_to_date)}, "
                  f"expected {_usd(o.expected_total)}, risk of exceeding {o.risk:.2f}")
    style = "bold red" if o.alert else "green"
    console.print(Text(f"  {'!' if o.alert else '-'} {o.describe(user)}", style=style))


def _render_chart(console: Console, p: CostPrediction) -> None:
    from rich.text import Text

    from cascadeflow_cli.cli.chart import BAND, HISTORY, MEAN, forecast_chart

    width = max(40, min(console.width, 100))
    lines = forecast_chart(p.history, p.daily, width=width)
    if not lines:
        return
    styles = {HISTORY: "cyan", BAND: "yellow", MEAN: "bold yellow"}
    console.print()
    for line in lines:
        text = Text()
        for char in line:
            text.append(char, style=styles.get(char, ""))
        console.print(text, no_wrap=True, overflow="crop")
    console.print(Text(f"  {HISTORY} daily spend   {BAND} {round(100 * p.confidence)}% band   "
                       f"{MEAN} mean", style="dim"))


def _usd(value: float) -> str:
    from cascadeflow_cli.money import format_dollars

    return format_dollars(value)


# --- png ------------------------------------------------------------------------------


def write_png(p: CostPrediction, path: Path, user: str | None) -> None:
    """The chart as a PNG (matplotlib, the optional [plot] extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("--plot needs matplotlib: pip install 'cascadeflow-cli[plot]'") from None
    history = list(p.history)[-90:]
    fig, ax = plt.subplots(figsize=(10, 4))
    try:
        if history:
            ax.bar([d for d, _ in history], [v for _, v in history], color="#4c9be8", label="daily spend")
        days = [d.date for d in p.daily]
        ax.fill_between(days, [d.lower for d in p.daily], [d.upper for d in p.daily], color="#f2b134",
                        alpha=0.35, label=f"{round(100 * p.confidence)}% band")
        ax.plot(days, [d.mean for d in p.daily], color="#d98c00", label="forecast (mean)")
        ax.set_title(f"Spend forecast for {user or 'all users'}: {p.method}", fontsize=9)
        ax.set_ylabel("USD per day")
        ax.legend(loc="upper left", fontsize=8)
        fig.autofmt_xdate()
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
