"""The one home of date parsing, "today" and the zero-filled daily range."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from cascadeflow_cli.clock import FixedClock
from cascadeflow_cli.dates import parse_day, parse_local_day, parse_since, parse_until, today, zero_filled
from cascadeflow_cli.errors import InputError


def test_a_date_is_local_midnight_and_until_a_date_includes_that_day() -> None:
    assert parse_since("2026-03-29", "Europe/Paris") == datetime(2026, 3, 28, 23, tzinfo=UTC)
    # the day the clocks go forward has 23 hours: the bound is the next local midnight
    assert parse_until("2026-03-29", "Europe/Paris") == datetime(2026, 3, 29, 22, tzinfo=UTC)
    assert parse_until("2026-03-29T10:00", "UTC") == datetime(2026, 3, 29, 10, tzinfo=UTC)


def test_until_the_last_day_the_ledger_holds_is_a_bound_past_it() -> None:
    """The bound after 9998-12-31 lies in 9999: it was refused, naming a date nobody typed."""
    assert parse_until("9998-12-31", "UTC") == datetime(9999, 1, 1, tzinfo=UTC)
    assert parse_until("9998-12-31", "America/Los_Angeles") == datetime(9999, 1, 1, 8, tzinfo=UTC)


@pytest.mark.parametrize("text", ["yesterday", "2026-02-30", "0001-01-01T00:00+01:00", "9999-12-31"])
def test_bad_dates_are_input_errors(text: str) -> None:
    with pytest.raises(InputError):
        parse_since(text, "UTC")


def test_as_of_names_its_flag_and_local_day_follows_the_zone() -> None:
    with pytest.raises(InputError, match="--as-of"):
        parse_day("soon", "--as-of")
    assert parse_day("2026-05-01", "--as-of") == date(2026, 5, 1)
    for padded_or_compact in (" 2026-05-01 ", "20260501"):  # refused as by --since/--until
        with pytest.raises(InputError, match="--as-of"):
            parse_day(padded_or_compact, "--as-of")
    assert parse_local_day("2026-05-01T23:30Z", "Asia/Tokyo") == date(2026, 5, 2)


def test_today_comes_from_the_clock_in_the_ledger_zone() -> None:
    clock = FixedClock(datetime(2026, 5, 1, 22, tzinfo=UTC))
    assert today(clock, "UTC") == date(2026, 5, 1)
    assert today(clock, "Europe/Berlin") == date(2026, 5, 2)


def test_zero_filled_covers_the_range_with_zeros_between() -> None:
    days = {date(2026, 1, 2): 5, date(2026, 1, 4): 7}
    assert zero_filled(days, 0) == [(date(2026, 1, 2), 5), (date(2026, 1, 3), 0), (date(2026, 1, 4), 7)]
    assert zero_filled(days, 0, first=date(2026, 1, 3), last=date(2026, 1, 3)) == [(date(2026, 1, 3), 0)]
    assert zero_filled({}, 0) == []
    assert zero_filled({}, 0, date(2026, 1, 2), date(2026, 1, 1)) == []


def test_a_local_time_the_clocks_skip_is_refused_and_a_repeated_one_is_the_first() -> None:
    with pytest.raises(InputError, match="no such local time: '2026-03-29T02:30' in Europe/Berlin"):
        parse_since("2026-03-29T02:30", "Europe/Berlin")
    # the hour either side of the jump exists; an explicit offset is always taken as given
    assert parse_since("2026-03-29T01:59", "Europe/Berlin") == datetime(2026, 3, 29, 0, 59, tzinfo=UTC)
    assert parse_since("2026-03-29T03:00", "Europe/Berlin") == datetime(2026, 3, 29, 1, tzinfo=UTC)
    assert parse_since("2026-03-29T02:30+01:00", "Europe/Berlin") == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    # 02:30 happens twice on 2026-10-25: the first time, still on summer time (+02:00)
    assert parse_since("2026-10-25T02:30", "Europe/Berlin") == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert parse_until("2026-10-25T02:30", "Europe/Berlin") == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    # a date whose midnight is skipped (Santiago, 2026-09-06) starts when the day does
    assert parse_since("2026-09-06", "America/Santiago") == datetime(2026, 9, 6, 4, tzinfo=UTC)
