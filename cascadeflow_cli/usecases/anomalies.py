"""Scan the ledger's daily spend for anomalies, per user and per model."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from cascadeflow_cli.dates import empty_range, today
from cascadeflow_cli.errors import InputError

if TYPE_CHECKING:
    from cascadeflow_cli.analytics.anomaly import Anomaly
    from cascadeflow_cli.config import AppConfig
    from cascadeflow_cli.ledger.db import Ledger
    from cascadeflow_cli.ledger.spend import Series


@dataclass(frozen=True)
class AnomalyScan:
    """What was found, sorted by day, user and model, the days it judged, and notes for
    the reader (the data ending days before ``last``)."""

    found: list[Anomaly]
    first: date | None
    last: date
    notes: tuple[str, ...] = ()


def scan_anomalies(ledger: Ledger, config: AppConfig, *, sensitivity: str, min_change: float,
                   user: str | None = None, since: date | None = None, until: date | None = None,
                   models: bool = True) -> AnomalyScan:
    """Run the detector over each user's daily spend (or the one user's) and, with
    ``models``, over each model's, judging the days from ``since`` (default: all history)
    to ``until`` (default: yesterday, the last whole day; never after today)."""
    from cascadeflow_cli.analytics.anomaly import HISTORY_DAYS, AnomalyDetector
    from cascadeflow_cli.ledger.spend import daily_spend, daily_spend_by, to_usd

    timezone = config.ledger.timezone
    now = today(ledger.clock, timezone)
    # today is not over: by default its spend so far is not judged as a drop
    last = until if until is not None else now - timedelta(days=1)
    last = min(last, now)  # spend recorded for days still to come is not judged
    if since is not None and since > last:
        if until is not None and until <= now:
            raise empty_range(since.isoformat(), last.isoformat())
        # the --until this names was never given: `--since 2099-01-01` read "is not
        # before --until 2026-12-03"
        raise InputError(f"--since {since.isoformat()} is after the last day judged, {last.isoformat()} "
                         f"({'yesterday' if until is None else 'today'}: days still to come are not judged)")
    detector = AnomalyDetector(sensitivity, min_change=min_change)
    # history read before --since, so its first days are judged with the same context
    read_from = since - timedelta(days=HISTORY_DAYS) if since else None
    found: list[Anomaly] = []
    if user is not None:
        per_user = {user: daily_spend(ledger, user=user, timezone=timezone, start=read_from, end=last)}
    else:
        per_user = daily_spend_by(ledger, "user", timezone=timezone, start=read_from, end=last)
    for name, series in per_user.items():
        found.extend(detector.detect(to_usd(series), user=name, since=since, until=last))
    if models:
        per_model = daily_spend_by(ledger, "model", user=user, timezone=timezone, start=read_from, end=last)
        if len(per_model) > 1:  # with one model its series is the total already judged
            for model, series in per_model.items():
                found.extend(detector.detect(to_usd(series), user=user, model=model, since=since,
                                             until=last))
    found.sort(key=lambda a: (a.date, a.user or "", a.model or ""))
    return AnomalyScan(found, since, last, _stale_notes(per_user, last))


def _stale_notes(per_user: dict[str, Series], last: date) -> tuple[str, ...]:
    """A note when the spend asked about (the user's, else everyone's) stops days before
    the judged window's end: an imported history ends, and the detector then flags a
    "drop to $0" that may be no real event. The drop stays listed (a user who stopped
    spending is one); the note names the ``--until`` that judges only recorded days."""
    from cascadeflow_cli.analytics.quiet import no_spend_since, stale_since

    spent = sorted({day for series in per_user.values() for day, nanos in series if nanos > 0})
    end = last + timedelta(days=1)
    stopped = stale_since(spent, end)
    if stopped is None:
        return ()
    return (f"{no_spend_since(stopped, end)}: a drop to $0 after it may be "
            f"where the recorded (or imported) data ends, not a real change; "
            f"`--until {stopped.isoformat()}` judges only the recorded days",)
