"""Window boundaries in three time zones, across DST changes, with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cascadeflow_cli.windows import window

U = UTC


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=U)


@pytest.mark.parametrize(
    ("tz", "now", "name", "start", "end"),
    [
        # UTC: plain calendar windows
        ("UTC", utc(2026, 11, 25, 23, 59, 59), "daily", utc(2026, 11, 25), utc(2026, 11, 26)),
        ("UTC", utc(2026, 11, 26, 0, 0, 0), "daily", utc(2026, 11, 26), utc(2026, 11, 27)),
        ("UTC", utc(2026, 11, 25, 12), "weekly", utc(2026, 11, 23), utc(2026, 11, 30)),  # Wed -> Mon
        ("UTC", utc(2026, 11, 30, 0), "weekly", utc(2026, 11, 30), utc(2026, 12, 7)),  # Monday itself
        ("UTC", utc(2026, 12, 31, 23), "monthly", utc(2026, 12, 1), utc(2027, 1, 1)),
        ("UTC", utc(2028, 2, 29, 12), "monthly", utc(2028, 2, 1), utc(2028, 3, 1)),  # leap year
        # Berlin (UTC+1 in winter): local midnight is 23:00 UTC the evening before
        ("Europe/Berlin", utc(2026, 11, 25, 22, 59), "daily", utc(2026, 11, 24, 23), utc(2026, 11, 25, 23)),
        ("Europe/Berlin", utc(2026, 11, 25, 23, 0), "daily", utc(2026, 11, 25, 23), utc(2026, 11, 26, 23)),
        # Berlin spring forward (2026-03-29 02:00 -> 03:00): a 23-hour day
        ("Europe/Berlin", utc(2026, 3, 29, 12), "daily", utc(2026, 3, 28, 23), utc(2026, 3, 29, 22)),
        # Berlin fall back (2026-10-25 03:00 -> 02:00): a 25-hour day
        ("Europe/Berlin", utc(2026, 10, 25, 12), "daily", utc(2026, 10, 24, 22), utc(2026, 10, 25, 23)),
        # the week containing the fall-back: Monday 19 Oct (UTC+2) to Monday 26 Oct (UTC+1)
        ("Europe/Berlin", utc(2026, 10, 25, 12), "weekly", utc(2026, 10, 18, 22), utc(2026, 10, 25, 23)),
        ("Europe/Berlin", utc(2026, 10, 31, 23, 30), "monthly", utc(2026, 10, 31, 23), utc(2026, 11, 30, 23)),
        # New York (UTC-5 in winter, -4 in summer)
        ("America/New_York", utc(2026, 11, 26, 4, 59), "daily", utc(2026, 11, 25, 5), utc(2026, 11, 26, 5)),
        ("America/New_York", utc(2026, 11, 26, 5, 0), "daily", utc(2026, 11, 26, 5), utc(2026, 11, 27, 5)),
        # spring forward 2026-03-08 02:00 -> 03:00
        ("America/New_York", utc(2026, 3, 8, 15), "daily", utc(2026, 3, 8, 5), utc(2026, 3, 9, 4)),
        # fall back 2026-11-01 02:00 -> 01:00
        ("America/New_York", utc(2026, 11, 1, 15), "daily", utc(2026, 11, 1, 4), utc(2026, 11, 2, 5)),
        ("America/New_York", utc(2026, 11, 1, 3, 59), "monthly", utc(2026, 10, 1, 4), utc(2026, 11, 1, 4)),
        # Kolkata: a half-hour offset (UTC+5:30)
        (
            "Asia/Kolkata",
            utc(2026, 11, 25, 18, 29),
            "daily",
            utc(2026, 11, 24, 18, 30),
            utc(2026, 11, 25, 18, 30),
        ),
        (
            "Asia/Kolkata",
            utc(2026, 11, 25, 18, 30),
            "daily",
            utc(2026, 11, 25, 18, 30),
            utc(2026, 11, 26, 18, 30),
        ),
        # Santiago: DST starts at local midnight (2026-09-06 00:00 -> 01:00): the day starts at 01:00
        ("America/Santiago", utc(2026, 9, 6, 12), "daily", utc(2026, 9, 6, 4), utc(2026, 9, 7, 3)),
    ],
)
def test_window_boundaries(tz: str, now: datetime, name: str, start: datetime, end: datetime) -> None:
    w = window(name, now, tz)
    assert (w.start, w.end) == (start, end)
    assert w.start <= now < w.end


def test_total_window_never_resets() -> None:
    w = window("total", utc(2026, 1, 1), "Europe/Berlin")
    assert w.end is None and w.start.year == 1970


def test_unknown_window() -> None:
    with pytest.raises(ValueError):
        window("hourly", utc(2026, 1, 1), "UTC")


@pytest.mark.parametrize("tz", ["Pacific/Apia", "America/Santiago", "Australia/Lord_Howe", "Europe/London",
                                "Asia/Kathmandu", "America/St_Johns", "Pacific/Kiritimati", "America/Havana"])
def test_windows_tile_time_without_gap_or_overlap(tz: str) -> None:
    """hostile-25: each window ends where the next starts and holds its own last microsecond,
    through DST changes (Lord Howe's 30 minutes, Santiago's and Havana's skipped midnights),
    a skipped day (Apia, 2011-12-30), odd offsets, month ends on the 31st and Feb 29: any
    instant's spend counts in exactly one daily, weekly and monthly window."""
    from datetime import timedelta

    for name in ("daily", "weekly", "monthly"):
        for first, last in ((datetime(2011, 3, 1, tzinfo=UTC), datetime(2012, 3, 15, tzinfo=UTC)),
                            (datetime(2027, 12, 1, tzinfo=UTC), datetime(2028, 12, 1, tzinfo=UTC))):
            w = window(name, first, tz)
            assert w.end is not None and w.start <= first < w.end
            while w.end < last:
                assert window(name, w.end - timedelta(microseconds=1), tz) == w
                after = window(name, w.end, tz)
                assert after.end is not None and after.start == w.end < after.end, (tz, name, w)
                w = after
