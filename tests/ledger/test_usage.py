"""Usage: totals and breakdowns, draft acceptance, savings, local days, on both backends
(``ledger_url``: a SQLite file and a PostgreSQL database give the same report)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cascadeflow_cli.ledger.backend import open_store
from cascadeflow_cli.ledger.export import LedgerFilter
from cascadeflow_cli.ledger.storage import LedgerStore
from cascadeflow_cli.ledger.usage import UsageRow
from tests.ledger.test_export import sample_requests


def make_ledger(location: str, records: list | None = None) -> LedgerStore:  # type: ignore[type-arg]
    ledger = open_store(location)
    ledger.record_many(sample_requests() if records is None else records)
    return ledger


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[LedgerStore]:
    with make_ledger(ledger_url) as store:
        yield store


def by_key(rows: tuple[UsageRow, ...]) -> dict[str | None, UsageRow]:
    return {r.key: r for r in rows}


def test_totals(ledger: LedgerStore) -> None:
    report = ledger.usage()
    t = report.total
    assert (report.by, report.groups) == (None, ())
    assert (t.requests, t.calls, t.errors) == (5, 5, 2)  # r3 blocked, r4 failed
    assert t.cost_nusd == 123_450 + 7_800 + 530_000 + 0 + 1_000_000_001
    assert (t.input_tokens, t.output_tokens) == (100 + 100 + 101 + 100 + 100, 250)
    assert (t.drafts, t.drafts_accepted) == (3, 2)  # r1 and r5 accepted, r2 escalated
    assert t.acceptance_rate == pytest.approx(2 / 3)
    assert t.savings_nusd == (2_000_000 - 123_450) - 7_800 + 0 + 0 + (2_000_000 - 1_000_000_001)
    assert t.verifier_only_nusd == 2_000_000 + 530_000 + 2_000_000


def test_by_user_orders_by_cost(ledger: LedgerStore) -> None:
    groups = ledger.usage(by="user").groups
    assert [g.key for g in groups] == ["carol", "alice", "bob"]
    alice = by_key(groups)["alice"]
    assert (alice.requests, alice.calls, alice.drafts, alice.drafts_accepted) == (2, 3, 2, 1)
    bob = by_key(groups)["bob"]
    assert (bob.requests, bob.calls, bob.errors, bob.acceptance_rate) == (2, 1, 2, None)


def test_by_model_counts_an_escalation_under_both_models(ledger: LedgerStore) -> None:
    groups = by_key(ledger.usage(by="model").groups)
    assert set(groups) == {"mini", "big", "haiku"}
    mini, big = groups["mini"], groups["big"]
    assert (mini.requests, mini.calls, mini.cost_nusd) == (3, 3, 123_450 + 7_800 + 1_000_000_001)
    assert (big.requests, big.calls, big.cost_nusd) == (1, 1, 530_000)
    assert (mini.drafts, mini.drafts_accepted) == (3, 2)
    # savings are credited to the draft model, which earned (or lost) them
    assert mini.savings_nusd == (2_000_000 - 123_450) - 7_800 + (2_000_000 - 1_000_000_001)
    assert big.savings_nusd == 0
    assert sum(g.cost_nusd for g in groups.values()) == ledger.usage().total.cost_nusd


def test_by_provider_and_domain(ledger: LedgerStore) -> None:
    providers = by_key(ledger.usage(by="provider").groups)
    assert set(providers) == {"openai", "anthropic"} and providers["anthropic"].errors == 1
    domains = by_key(ledger.usage(by="domain").groups)
    assert set(domains) == {"code", None} and domains["code"].requests == 1


def test_days_are_local_and_gaps_are_filled(ledger: LedgerStore) -> None:
    utc = ledger.usage(by="day").groups
    assert [(g.key, g.requests) for g in utc] == [("2026-11-01", 3), ("2026-11-02", 2)]
    # 23:30 UTC is already the next day in Berlin (UTC+1 in November)
    berlin = ledger.usage(by="day", timezone="Europe/Berlin").groups
    assert [(g.key, g.requests) for g in berlin] == [("2026-11-01", 1), ("2026-11-02", 4)]
    tokyo = ledger.usage(by="day", timezone="Asia/Kathmandu").groups  # UTC+5:45
    assert sum(g.requests for g in tokyo) == 5


def test_empty_days_between_are_zero(tmp_path: Path) -> None:
    from tests.ledger.test_export import call, request

    ledger = make_ledger(str(tmp_path / "l.db"), [
        request("a", "2026-11-01T10:00:00.000000Z", "u", (call("a", 0, "2026-11-01T10:00:00.000000Z"),)),
        request("b", "2026-11-04T10:00:00.000000Z", "u", (call("b", 0, "2026-11-04T10:00:00.000000Z"),)),
    ])
    days = ledger.usage(by="day").groups
    assert [(g.key, g.requests) for g in days] == [
        ("2026-11-01", 1), ("2026-11-02", 0), ("2026-11-03", 0), ("2026-11-04", 1)]


def test_filters(ledger: LedgerStore) -> None:
    flt = LedgerFilter(user="alice", since="2026-11-01T12:00:00.000000Z")
    report = ledger.usage(flt, by="model")
    assert report.total.requests == 1 and [g.key for g in report.groups] == ["big", "mini"]
    until = ledger.usage(LedgerFilter(until="2026-11-02T00:00:00.000000Z")).total
    assert until.requests == 3


def test_empty_ledger(tmp_path: Path) -> None:
    with make_ledger(str(tmp_path / "l.db"), []) as empty:
        report = empty.usage(by="user")
    assert report.groups == () and report.total.requests == 0 and report.total.acceptance_rate is None
