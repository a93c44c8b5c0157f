"""Budget windows: calendar day, ISO week (from Monday), calendar month, and total, in
the configured IANA time zone. Pure functions of an instant and a zone: computed at
check time, so no reset job can be late and no UTC offset can shift a reset."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

WINDOWS = ("daily", "weekly", "monthly", "total")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    name: str
    start: datetime  # aware UTC; first instant inside the window
    end: datetime | None  # aware UTC; when it resets (None for total)


@lru_cache(maxsize=256)  # pure; every budget check asks for the same few days (`cascade serve`)
def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of ``day`` in ``tz``, in UTC. Where midnight does not exist
    (a DST jump at 00:00), that is the first instant after the gap."""
    naive = datetime.combine(day, time(0))
    candidates = [naive.replace(tzinfo=tz, fold=f).astimezone(UTC) for f in (0, 1)]
    valid = [c for c in candidates if c.astimezone(tz).date() == day]
    if valid:
        return min(valid)
    # 00:00 fell into a gap: the day starts where the gap ends
    return max(candidates)


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def window(name: str, now: datetime, timezone: str) -> Window:
    tz = ZoneInfo(timezone)
    today = now.astimezone(tz).date()
    if name == "daily":
        first, after = today, today + timedelta(days=1)
    elif name == "weekly":
        first = today - timedelta(days=today.weekday())
        after = first + timedelta(days=7)
    elif name == "monthly":
        first, after = _month_start(today), _next_month(today)
    elif name == "total":
        return Window("total", EPOCH, None)
    else:
        raise ValueError(f"unknown budget window {name!r}")
    return Window(name, local_midnight(first, tz), local_midnight(after, tz))


def windows(now: datetime, timezone: str, names: tuple[str, ...] = WINDOWS) -> list[Window]:
    return [window(n, now, timezone) for n in names]
