"""Budgets across daylight-saving changes (New York, London, Lord Howe's 30-minute shift,
Santiago's skipped midnight): spend at 23:30, 00:30, 01:30 and 02:30 local around each
change counts in the local day it happened, the daily window resets at the next local
midnight, and `budget show`, `usage --since D --until D` and `usage --by day` agree."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cascadeflow_cli.cli.options import ledger_filter
from cascadeflow_cli.clock import FixedClock, format_ts
from cascadeflow_cli.config import parse_config
from cascadeflow_cli.ledger.budgets import BudgetConfig, set_budget
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.ledger.status import budget_status
from tests.ledger.test_export import call, request

CHANGES = {  # the days before and of each change, spring and autumn
    "America/New_York": ["2026-03-07", "2026-03-08", "2026-10-31", "2026-11-01"],
    "Europe/London": ["2026-03-28", "2026-03-29", "2026-10-24", "2026-10-25"],
    "Australia/Lord_Howe": ["2026-04-04", "2026-04-05", "2026-10-03", "2026-10-04"],
    "America/Santiago": ["2026-09-05", "2026-09-06", "2026-04-04", "2026-04-05"],
}
SPENDS = ((-1, 23, 30, 1), (0, 0, 30, 10), (0, 1, 30, 100), (0, 2, 30, 1000))  # day offset, h, m, USD


@pytest.mark.parametrize("timezone", list(CHANGES))
def test_each_spend_counts_in_its_local_day_everywhere(tmp_path: Path, timezone: str) -> None:
    tz = ZoneInfo(timezone)
    days = [date.fromisoformat(d) for d in CHANGES[timezone]]
    spends: list[tuple[datetime, int]] = []
    for day in days:
        for offset, hour, minute, usd in SPENDS:
            local = datetime.combine(day + timedelta(days=offset), datetime.min.time()).replace(
                hour=hour, minute=minute, tzinfo=tz)  # a skipped 02:30 or 00:30 is the hour after
            spends.append((local.astimezone(UTC), usd))
    ledger = open_ledger(tmp_path / "l.db")
    for n, (moment, usd) in enumerate(spends):
        ts = format_ts(moment)
        ledger.record(request(f"r{n}", ts, "alice", (call(f"r{n}", 0, ts, cost=usd * 10**9),)))
    set_budget(ledger, "alice", BudgetConfig(daily=Decimal(10**6)))
    ledger.close()
    config = parse_config(f'[ledger]\ntimezone = "{timezone}"\n', tmp_path / "cascadeflow.toml")
    by_day = {g.key: g.cost_nusd for g in open_ledger(tmp_path / "l.db").usage(None, "day", timezone).groups}
    for day in days:
        expected = sum(usd for moment, usd in spends if moment.astimezone(tz).date() == day) * 10**9
        noon = datetime.combine(day, datetime.min.time()).replace(hour=12, tzinfo=tz).astimezone(UTC)
        ledger = open_ledger(tmp_path / "l.db", FixedClock(noon))
        try:
            [daily] = [s for s in budget_status(ledger, config, "alice").states if s.window == "daily"]
            ranged = ledger.usage(ledger_filter("alice", day.isoformat(), day.isoformat(), None, timezone))
        finally:
            ledger.close()
        assert daily.spent_nusd == ranged.total.cost_nusd == by_day[day.isoformat()] == expected, day
        following = datetime.combine(day + timedelta(days=1), datetime.min.time()).replace(tzinfo=tz)
        assert daily.resets_at is not None
        local_reset = daily.resets_at.astimezone(tz)
        assert local_reset.date() == day + timedelta(days=1) and local_reset.hour <= 1, local_reset
        assert daily.resets_at == following.astimezone(UTC) or timezone == "America/Santiago"
