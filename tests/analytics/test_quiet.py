"""The stale-data rule shared by `cascade forecast` and `cascade anomalies`."""

from __future__ import annotations

from datetime import date, timedelta

from cascadeflow_cli.analytics.quiet import no_spend_since, stale_since

START = date(2026, 9, 1)


def days(*offsets: int) -> list[date]:
    return [START + timedelta(days=i) for i in offsets]


def test_a_quiet_end_longer_than_any_gap_before_is_stale() -> None:
    daily = days(*range(30))
    assert stale_since(daily, START + timedelta(days=33)) == START + timedelta(days=29)
    # up to one empty day is not worth a note
    assert stale_since(daily, START + timedelta(days=31)) is None
    assert stale_since(daily, START + timedelta(days=30)) is None


def test_a_weekly_spenders_usual_gap_is_not_stale() -> None:
    weekly = days(0, 7, 14, 21)
    assert stale_since(weekly, START + timedelta(days=28)) is None  # six empty days, as always
    assert stale_since(weekly, START + timedelta(days=29)) == START + timedelta(days=21)


def test_no_spend_is_not_stale_and_the_wording() -> None:
    assert stale_since([], START) is None
    assert no_spend_since(date(2026, 11, 23), date(2026, 12, 2)) == (
        "no spend recorded since 2026-11-23, 9 days")
    assert no_spend_since(date(2026, 12, 1), date(2026, 12, 2)) == "no spend recorded since 2026-12-01, 1 day"
    assert no_spend_since(date(2020, 1, 1), date(2026, 12, 2)).endswith(", 2,527 days")
