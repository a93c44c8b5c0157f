"""`cascade anomalies`: days that cost far more or less than usual, and lasting shifts,
per user and per model."""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from cascadeflow_cli.cli.context import app_context, parse_since, stdout_console
from cascadeflow_cli.errors import InputError

if TYPE_CHECKING:
    from cascadeflow_cli.analytics.anomaly import Anomaly, AnomalyDetector
    from cascadeflow_cli.cli.context import AppContext
    from cascadeflow_cli.cli.layout import FittedTable

SENSITIVITIES = ("low", "medium", "high")


def anomalies(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user (default: every "
                                             "user, and every model).")] = None,
    sensitivity: Annotated[str, typer.Option("--sensitivity", "-s", help="low, medium or high: about "
                                             "1, 3 or 10 false alarms per 1,000 ordinary days, "
                                             "on each series' own noise.")] = "medium",
    since: Annotated[str | None, typer.Option("--since", help="Report days from DATE "
                                              "(YYYY-MM-DD or ISO; default: all history).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Report days up to DATE "
                                              "(default: yesterday, the last whole day).")] = None,
    min_change: Annotated[float, typer.Option("--min-change", min=0.0, help="Smallest change in USD "
                                              "worth reporting.")] = 0.5,
    models: Annotated[bool, typer.Option("--models/--no-models", help="Also look at each model's "
                                         "spend.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array of anomalies.")] = False,
) -> None:
    """Find spend anomalies: spikes, drops and level shifts, each with what was expected,
    what happened and why it was flagged."""
    from cascadeflow_cli.analytics.anomaly import AnomalyDetector

    if sensitivity not in SENSITIVITIES:
        raise InputError(f"--sensitivity must be one of {', '.join(SENSITIVITIES)}, got {sensitivity!r}")
    context = app_context(ctx)
    timezone = context.config.ledger.timezone
    today = _today(context, timezone)
    first = _local_day(since, timezone) if since else None
    # today is not over: by default its spend so far is not judged as a drop
    last = _local_day(until, timezone) if until else today - timedelta(days=1)
    if last > today:
        last = today  # spend recorded for days still to come is not judged
    if first is not None and first > last:
        raise InputError(f"--since {first.isoformat()} is after --until {last.isoformat()}")
    detector = AnomalyDetector(sensitivity, min_change=min_change)
    found = find(context, detector, user=user, first=first, last=last, timezone=timezone, models=models)
    if as_json:
        sys.stdout.write(json.dumps([a.to_json() for a in found], ensure_ascii=False, indent=2) + "\n")
        return
    if not found:
        scope = f" for {user}" if user else ""
        sys.stderr.write(f"no anomalies{scope} at {sensitivity} sensitivity"
                         f"{' since ' + first.isoformat() if first else ''} up to {last.isoformat()}\n")
        return
    stdout_console().print(anomalies_table(found, sensitivity))


def find(ctx: AppContext, detector: AnomalyDetector, *, user: str | None, first: date | None, last: date,
         timezone: str, models: bool) -> list[Anomaly]:
    """Run the detector over each user's daily spend (or the one user's) and, with
    ``models``, over each model's, reporting days from ``first`` to ``last``."""
    from cascadeflow_cli.analytics.anomaly import HISTORY_DAYS
    from cascadeflow_cli.ledger.spend import daily_spend, daily_spend_by, to_usd

    ledger = ctx.ledger()
    # history read before --since, so its first days are judged with the same context
    read_from = first - timedelta(days=HISTORY_DAYS) if first else None
    found: list[Anomaly] = []
    if user is not None:
        per_user = {user: daily_spend(ledger, user=user, timezone=timezone, start=read_from, end=last)}
    else:
        per_user = daily_spend_by(ledger, "user", timezone=timezone, start=read_from, end=last)
    for name, series in per_user.items():
        found.extend(detector.detect(to_usd(series), user=name, since=first, until=last))
    if models:
        per_model = daily_spend_by(ledger, "model", user=user, timezone=timezone, start=read_from, end=last)
        if len(per_model) > 1:  # with one model its series is the total already judged
            for model, series in per_model.items():
                found.extend(detector.detect(to_usd(series), user=user, model=model, since=first,
                                             until=last))
    found.sort(key=lambda a: (a.date, a.user or "", a.model or ""))
    return found


def _today(ctx: AppContext, timezone: str) -> date:
    from zoneinfo import ZoneInfo

    return ctx.ledger().clock.now().astimezone(ZoneInfo(timezone)).date()


def _local_day(text: str, timezone: str) -> date:
    from zoneinfo import ZoneInfo

    return parse_since(text, timezone).astimezone(ZoneInfo(timezone)).date()


def anomalies_table(found: list[Anomaly], sensitivity: str) -> FittedTable:
    from rich.text import Text

    from cascadeflow_cli.cli.render import fitted_table

    colours = {"high": "bold red", "medium": "yellow", "low": ""}
    rows = []
    for a in found:
        rows.append([a.date.isoformat(), a.user or "*", a.model or "-", a.kind,
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

    return format_dollars(value)
