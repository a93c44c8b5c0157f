"""Ledger history read back as the records the engine wrote (for `export --otlp`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.ledger.export import LedgerFilter
from cascadeflow_cli.ledger.history import iter_records
from cascadeflow_cli.ledger.records import CallRecord, RequestRecord


def record(i: int, user: str, ts: str) -> RequestRecord:
    rid = f"req-{i:04d}"
    calls = tuple(
        CallRecord(
            id=f"{rid}-{seq}",
            request_id=rid,
            ts=ts,
            seq=seq,
            role="draft" if seq == 0 else "verifier",
            model="mini" if seq == 0 else "big",
            model_id="openai/gpt-4o-mini",
            provider="openai",
            status="ok",
            input_tokens=10 + seq,
            output_tokens=5,
            cached_tokens=seq,
            cost_nusd=100 + seq,
            latency_ms=12.5,
            quality_score=0.4,
            quality_reasons=("short",),
            accepted=seq == 1,
            answer="a",
            response_id=f"chatcmpl-{i}",
            response_model="gpt-4o-mini-2024",
            max_tokens=64,
            error_type=None,
        )
        for seq in range(1 + i % 2)
    )
    return RequestRecord(
        id=rid,
        ts=ts,
        user=user,
        status="ok",
        query="q",
        answer="a",
        domain="general",
        draft_accepted=len(calls) == 1,
        escalated=len(calls) == 2,
        quality_reasons=("ok",),
        cost_nusd=sum(c.cost_nusd for c in calls),
        verifier_only_cost_nusd=900,
        savings_nusd=800,
        latency_ms=30.0,
        calls=calls,
    )


def test_round_trip_in_time_order_across_pages(tmp_path: Path) -> None:
    # same timestamps on purpose: paging must not lose or repeat rows that tie on ts
    written = [
        record(i, "alice" if i % 3 else "bob", f"2026-11-{1 + i // 4:02d}T10:00:00.000000Z")
        for i in range(11)
    ]
    with open_ledger(tmp_path / "l.db") as ledger:
        for r in reversed(written):
            ledger.record(r)
        got = list(iter_records(ledger.db.conn, page=3))
        assert sorted(got, key=lambda r: r.id) == sorted(written, key=lambda r: r.id)
        assert [r.ts for r in got] == sorted(r.ts for r in written)
        bob = list(iter_records(ledger.db.conn, LedgerFilter(user="bob", since="2026-11-02"), page=2))
        assert {r.id for r in bob} == {r.id for r in written if r.user == "bob" and r.ts >= "2026-11-02"}


@pytest.mark.parametrize(("count", "page"), [(0, 1), (1, 1), (7, 1), (7, 2), (7, 7), (8, 3), (25, 4)])
def test_every_request_exactly_once_whatever_the_page(tmp_path: Path, count: int, page: int) -> None:
    with open_ledger(tmp_path / "l.db") as ledger:
        for i in range(count):
            ledger.record(record(i, "u", f"2026-11-{1 + i % 3:02d}T10:00:00.000000Z"))
        ids = [r.id for r in iter_records(ledger.db.conn, page=page)]
    assert sorted(ids) == [f"req-{i:04d}" for i in range(count)]
