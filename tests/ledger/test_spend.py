"""Daily spend series from a real ledger: local days, zero-filled, per user and model, on
both backends (``ledger_url``: a SQLite file, a PostgreSQL database)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from cascadeflow_cli.ledger.backend import open_store
from cascadeflow_cli.ledger.records import CallRecord, RequestRecord
from cascadeflow_cli.ledger.spend import daily_spend, daily_spend_by, to_usd
from cascadeflow_cli.ledger.storage import LedgerStore

_ids = iter(range(10**6))


def record(ledger: LedgerStore, ts: str, cost: int, *, user: str = "alice",
           models: tuple[str, ...] = ("mini",)) -> None:
    """One request at ``ts`` costing ``cost`` nano-dollars, split evenly over ``models``."""
    rid = f"r{next(_ids)}"
    share = cost // len(models)
    calls = tuple(
        CallRecord(id=f"{rid}-{i}", request_id=rid, ts=ts, seq=i, role="draft" if i == 0 else "verifier",
                   model=m, model_id=f"openai/{m}", provider="openai", status="ok",
                   cost_nusd=share if i < len(models) - 1 else cost - share * (len(models) - 1))
        for i, m in enumerate(models))
    ledger.record(RequestRecord(id=rid, ts=ts, user=user, status="ok", query="q", answer="a",
                                cost_nusd=cost, calls=calls))


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[LedgerStore]:
    with open_store(ledger_url) as store:
        yield store


def test_empty_ledger(ledger: LedgerStore) -> None:
    assert daily_spend(ledger) == []
    assert daily_spend_by(ledger, "user") == {}
    assert daily_spend(ledger, start=date(2026, 1, 1), end=date(2026, 1, 3)) == [
        (date(2026, 1, 1), 0), (date(2026, 1, 2), 0), (date(2026, 1, 3), 0)]


def test_days_are_summed_and_zero_filled(ledger: LedgerStore) -> None:
    record(ledger, "2026-03-01T10:00:00.000000Z", 100)
    record(ledger, "2026-03-01T23:59:59.999999Z", 50)
    record(ledger, "2026-03-04T00:00:00.000000Z", 7)
    assert daily_spend(ledger) == [(date(2026, 3, 1), 150), (date(2026, 3, 2), 0),
                                   (date(2026, 3, 3), 0), (date(2026, 3, 4), 7)]
    assert daily_spend(ledger, start=date(2026, 2, 28), end=date(2026, 3, 2)) == [
        (date(2026, 2, 28), 0), (date(2026, 3, 1), 150), (date(2026, 3, 2), 0)]
    assert to_usd([(date(2026, 3, 1), 1_500_000_000)]) == [(date(2026, 3, 1), 1.5)]


def test_local_days_in_the_configured_time_zone(ledger: LedgerStore) -> None:
    record(ledger, "2026-11-25T22:30:00.000000Z", 1)  # 23:30 in Berlin (UTC+1)
    record(ledger, "2026-11-25T23:30:00.000000Z", 2)  # 00:30 on the 26th in Berlin
    assert daily_spend(ledger) == [(date(2026, 11, 25), 3)]
    assert daily_spend(ledger, timezone="Europe/Berlin") == [(date(2026, 11, 25), 1),
                                                             (date(2026, 11, 26), 2)]
    assert daily_spend(ledger, timezone="America/New_York") == [(date(2026, 11, 25), 3)]
    assert daily_spend(ledger, timezone="Asia/Kolkata") == [(date(2026, 11, 26), 3)]  # UTC+5:30


def test_days_across_daylight_saving_changes(ledger: LedgerStore) -> None:
    # Berlin: UTC+1 until 2026-03-29 01:00 UTC, then UTC+2 until 2026-10-25 01:00 UTC
    record(ledger, "2026-03-28T23:30:00.000000Z", 1)  # 00:30 on the 29th (UTC+1)
    record(ledger, "2026-03-29T22:30:00.000000Z", 2)  # 00:30 on the 30th (UTC+2 now)
    record(ledger, "2026-10-24T22:30:00.000000Z", 4)  # 00:30 on the 25th (still UTC+2)
    record(ledger, "2026-10-25T23:30:00.000000Z", 8)  # 00:30 on the 26th (UTC+1 again)
    days = dict(daily_spend(ledger, timezone="Europe/Berlin"))
    assert days[date(2026, 3, 29)] == 1
    assert days[date(2026, 3, 30)] == 2
    assert days[date(2026, 10, 25)] == 4
    assert days[date(2026, 10, 26)] == 8
    assert sum(days.values()) == 15


def test_start_and_end_are_local_days(ledger: LedgerStore) -> None:
    record(ledger, "2026-06-30T22:30:00.000000Z", 5)  # July 1st in Berlin (UTC+2)
    record(ledger, "2026-07-02T12:00:00.000000Z", 6)
    assert daily_spend(ledger, timezone="Europe/Berlin", start=date(2026, 7, 1), end=date(2026, 7, 1)) == [
        (date(2026, 7, 1), 5)]
    assert daily_spend(ledger, timezone="Europe/Berlin", end=date(2026, 6, 30)) == []


def test_per_user_and_per_model(ledger: LedgerStore) -> None:
    record(ledger, "2026-05-01T12:00:00.000000Z", 100, user="alice", models=("mini", "big"))
    record(ledger, "2026-05-02T12:00:00.000000Z", 30, user="bob", models=("mini",))
    record(ledger, "2026-05-03T12:00:00.000000Z", 10, user="alice", models=("big",))
    assert daily_spend(ledger, user="alice") == [(date(2026, 5, 1), 100), (date(2026, 5, 2), 0),
                                                 (date(2026, 5, 3), 10)]
    assert daily_spend(ledger, user="nobody") == []
    assert daily_spend(ledger, model="big") == [(date(2026, 5, 1), 50), (date(2026, 5, 2), 0),
                                                (date(2026, 5, 3), 10)]
    assert daily_spend(ledger, model="mini", user="bob") == [(date(2026, 5, 2), 30)]
    by_user = daily_spend_by(ledger, "user")
    assert sorted(by_user) == ["alice", "bob"]
    assert by_user["bob"] == [(date(2026, 5, 2), 30)]
    by_model = daily_spend_by(ledger, "model", user="alice")
    assert by_model == {"big": [(date(2026, 5, 1), 50), (date(2026, 5, 2), 0), (date(2026, 5, 3), 10)],
                        "mini": [(date(2026, 5, 1), 50)]}
    with pytest.raises(ValueError):
        daily_spend_by(ledger, "domain")


def test_future_dated_rows_are_cut_by_end(ledger: LedgerStore) -> None:
    record(ledger, "2026-05-01T12:00:00.000000Z", 1)
    record(ledger, "2099-01-01T12:00:00.000000Z", 999)
    assert daily_spend(ledger, end=date(2026, 5, 1)) == [(date(2026, 5, 1), 1)]
    assert len(daily_spend(ledger)) > 20000  # without an end, zero-filled up to the odd row
