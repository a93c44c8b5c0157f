"""Export: one row per call, exact money, RFC 4180 CSV, JSON and JSONL, filters, order, on
both backends (``ledger_url``: PostgreSQL renders every byte as SQLite does)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from cascadeflow_cli.ledger.backend import open_store
from cascadeflow_cli.ledger.db import Ledger, open_ledger
from cascadeflow_cli.ledger.export import COLUMN_NAMES, LedgerFilter, export_sql, write_export, write_rows
from cascadeflow_cli.ledger.records import CallRecord, RequestRecord
from cascadeflow_cli.ledger.storage import LedgerStore

DOCS = Path(__file__).parents[2] / "docs" / "ledger-columns.md"
TRICKY = 'Explain, "carefully":\na line break, a comma and ünïcödé'


def call(request_id: str, seq: int, ts: str, *, model: str = "mini", role: str = "draft",
         cost: int = 123_450, accepted: bool | None = True, answer: str | None = "an answer",
         status: str = "ok", **extra: object) -> CallRecord:
    model_id = {"mini": "openai/gpt-4o-mini", "big": "openai/gpt-4o",
                "haiku": "anthropic/claude-3-5-haiku-20241022"}[model]
    return CallRecord(id=f"{request_id}-{seq}", request_id=request_id, ts=ts, seq=seq, role=role,
                      model=model, model_id=model_id, provider=model_id.split("/")[0], status=status,
                      input_tokens=100 + seq, output_tokens=50, cost_nusd=cost, cost_source="litellm",
                      latency_ms=118.8879609999276, quality_score=0.91, accepted=accepted,
                      answer=answer, **extra)  # type: ignore[arg-type]


def request(request_id: str, ts: str, user: str, calls: tuple[CallRecord, ...], **extra: object
            ) -> RequestRecord:
    cost = sum(c.cost_nusd for c in calls)
    fields: dict[str, object] = dict(
        id=request_id, ts=ts, user=user, status="ok", query="What is 2+2?",
        answer=calls[-1].answer if calls else None, model=calls[-1].model if calls else None,
        draft_model=calls[0].model if calls else None,
        draft_accepted=len(calls) == 1 and calls[0].role == "draft", escalated=len(calls) > 1,
        quality_score=calls[-1].quality_score if calls else None, cost_nusd=cost,
        verifier_only_cost_nusd=2_000_000, savings_nusd=2_000_000 - cost, latency_ms=130.5,
        calls=calls)
    fields.update(extra)
    return RequestRecord(**fields)  # type: ignore[arg-type]


def sample_requests() -> list[RequestRecord]:
    """An accepted draft, an escalation with tricky text, a blocked request (no call), an
    error, another user's request on another model, a batch row."""
    t1, t2, t3 = "2026-11-01T08:00:00.000000Z", "2026-11-01T23:30:00.000000Z", "2026-11-02T10:15:00.500000Z"
    escalated = (call("r2", 0, t2, accepted=False, cost=7_800,
                      quality_reasons=("refusal: refuses", 'quotes "here", and commas')),
                 call("r2", 1, t2, model="big", role="verifier", cost=530_000, answer=TRICKY))
    return [
        request("r1", t1, "alice", (call("r1", 0, t1),), domain="code", domain_confidence=1.0),
        request("r2", t2, "alice", escalated, query=TRICKY, verifier_only_cost_nusd=530_000,
                savings_nusd=-7_800),
        request("r3", t2, "bob", (), status="blocked", error="bob's daily budget: spent $5.00",
                enforcement="block", enforcement_message="bob's daily budget: spent $5.00",
                verifier_only_cost_nusd=0, savings_nusd=0, query=None),
        request("r4", t3, "bob", (call("r4", 0, t3, model="haiku", role="verifier", answer=None,
                                       accepted=None, cost=0, status="error",
                                       error="haiku: HTTP 500"),),
                status="error", error="haiku: HTTP 500", answer=None, verifier_only_cost_nusd=0,
                savings_nusd=0),
        request("r5", t3, "carol", (call("r5", 0, t3, cost=1_000_000_001),),
                external_id="b123:row-7", enforcement="warn", enforcement_message="80% used"),
    ]


def make_ledger(path: Path, records: list[RequestRecord] | None = None) -> Ledger:
    ledger = open_ledger(path)
    for r in sample_requests() if records is None else records:
        ledger.record(r)
    return ledger


def export_text(ledger: LedgerStore, fmt: str, flt: LedgerFilter | None = None) -> str:
    out = io.StringIO(newline="")
    if isinstance(ledger, Ledger):
        write_export(ledger.db.conn, out, fmt, flt)  # SQLite's own path (the CLI's is the one below)
    else:
        write_rows(ledger.export_rows(fmt, flt or LedgerFilter()), out, fmt)
    return out.getvalue()


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[LedgerStore]:
    """The sample ledger on each backend, read through the storage interface."""
    with open_store(ledger_url) as store:
        store.record_many(sample_requests())
        yield store


@pytest.fixture
def lite(tmp_path: Path) -> Ledger:
    return make_ledger(tmp_path / "ledger.db")


def test_csv_has_the_documented_header_and_one_row_per_call(ledger: LedgerStore) -> None:
    text = export_text(ledger, "csv")
    assert text.splitlines()[0] == ",".join(COLUMN_NAMES)
    rows = csv_rows(text)
    assert [(r["request_id"], r["id"]) for r in rows] == [
        ("r1", "r1-0"), ("r2", "r2-0"), ("r2", "r2-1"), ("r3", ""), ("r4", "r4-0"), ("r5", "r5-0")]
    assert {"id", "request_id", "timestamp", "user", "model", "provider", "role", "input_tokens",
            "output_tokens", "cost", "status"} <= set(COLUMN_NAMES)  # CLI.md's minimum


def test_csv_is_rfc4180_with_crlf_and_quotes_only_where_needed(ledger: LedgerStore) -> None:
    text = export_text(ledger, "csv")
    assert text.endswith("\r\n") and "\r\n" in text.splitlines(keepends=True)[0]
    rows = {r["id"]: r for r in csv_rows(text)}
    assert rows["r2-1"]["query"] == TRICKY and rows["r2-1"]["answer"] == TRICKY
    assert json.loads(rows["r2-0"]["quality_reasons"]) == ["refusal: refuses", 'quotes "here", and commas']
    first_line = text.splitlines()[1]
    assert first_line.startswith("r1-0,r1,2026-11-01T08:00:00.000000Z,alice,mini,openai/gpt-4o-mini,")
    assert '"' not in first_line.replace('"[]"', "")  # plain fields are not quoted


def test_money_is_an_exact_decimal_string(ledger: LedgerStore) -> None:
    rows = {r["id"] or r["request_id"]: r for r in csv_rows(export_text(ledger, "csv"))}
    assert rows["r1-0"]["cost"] == "0.000123450"
    assert rows["r5-0"]["cost"] == "1.000000001"  # no float on the way: 1e9 + 1 nano-dollars
    assert rows["r2-0"]["savings"] == "-0.000007800"
    assert rows["r4-0"]["cost"] == "0.000000000"
    total = sum(Decimal(r["cost"]) for r in rows.values() if r["cost"])
    assert total == Decimal("1.000661251")


def test_request_amounts_appear_once_so_column_sums_are_totals(ledger: LedgerStore) -> None:
    rows = csv_rows(export_text(ledger, "csv"))
    r2 = [r for r in rows if r["request_id"] == "r2"]
    assert [r["verifier_only_cost"] for r in r2] == ["0.000530000", ""]
    assert [r["savings"] for r in r2] == ["-0.000007800", ""]
    assert [r["user"] for r in r2] == ["alice", "alice"]  # descriptive columns repeat
    blocked = next(r for r in rows if r["request_id"] == "r3")
    assert blocked["request_status"] == "blocked" and blocked["model"] == "" and blocked["cost"] == ""
    assert blocked["savings"] == "0.000000000" and blocked["enforcement"] == "block"


def test_flags_and_missing_values(ledger: LedgerStore) -> None:
    rows = {r["id"]: r for r in csv_rows(export_text(ledger, "csv")) if r["id"]}
    assert rows["r2-0"]["accepted"] == "false" and rows["r2-1"]["accepted"] == "true"
    assert rows["r4-0"]["accepted"] == "" and rows["r4-0"]["answer"] == ""
    assert rows["r2-0"]["escalated"] == "true" and rows["r1-0"]["draft_accepted"] == "true"
    assert rows["r5-0"]["external_id"] == "b123:row-7"
    assert rows["r1-0"]["latency_ms"] == "118.887960999928"  # 15 significant digits


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_json_formats_carry_the_same_columns_with_types(ledger: LedgerStore, fmt: str) -> None:
    text = export_text(ledger, fmt)
    if fmt == "json":
        assert text.startswith("[\n{") and text.endswith("}\n]\n")
        rows = json.loads(text, parse_float=Decimal)
    else:
        rows = [json.loads(line, parse_float=Decimal) for line in text.splitlines()]
    assert len(rows) == 6 and all(list(r) == list(COLUMN_NAMES) for r in rows)
    by_id = {r["id"] or r["request_id"]: r for r in rows}
    assert by_id["r5-0"]["cost"] == Decimal("1.000000001")
    assert by_id["r2-0"]["accepted"] is False and by_id["r2-0"]["escalated"] is True
    assert by_id["r2-0"]["quality_reasons"] == ["refusal: refuses", 'quotes "here", and commas']
    assert by_id["r3"]["id"] is None and by_id["r3"]["seq"] is None
    assert by_id["r2-1"]["savings"] is None and by_id["r2-0"]["savings"] == Decimal("-0.0000078")
    assert by_id["r2-1"]["answer"] == TRICKY


def test_empty_ledger_exports_a_header_or_an_empty_array(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path / "empty.db", [])
    assert export_text(ledger, "csv") == ",".join(COLUMN_NAMES) + "\r\n"
    assert json.loads(export_text(ledger, "json")) == []
    assert export_text(ledger, "jsonl") == ""


@pytest.mark.parametrize(("flt", "expected"), [
    (LedgerFilter(user="bob"), ["r3", "r4-0"]),
    (LedgerFilter(since="2026-11-01T23:30:00.000000Z"), ["r2-0", "r2-1", "r3", "r4-0", "r5-0"]),
    (LedgerFilter(until="2026-11-01T23:30:00.000000Z"), ["r1-0"]),
    (LedgerFilter(model="big"), ["r2-1"]),
    (LedgerFilter(model="openai/gpt-4o-mini", user="alice"), ["r1-0", "r2-0"]),
])
def test_filters(ledger: LedgerStore, flt: LedgerFilter, expected: list[str]) -> None:
    assert [r["id"] or r["request_id"] for r in csv_rows(export_text(ledger, "csv", flt))] == expected


def test_order_is_walked_from_indexes_without_a_sort(lite: Ledger) -> None:
    """What keeps a million-row export streaming in constant memory and at speed (SQLite)."""
    for flt in (LedgerFilter(), LedgerFilter(user="bob", since="2026-11-01T00:00:00.000000Z")):
        sql, params = export_sql("csv", flt)
        plan = " ".join(str(row) for row in lite.db.conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
        assert "TEMP B-TREE" not in plan, plan


def test_the_documented_column_list_matches_the_export() -> None:
    documented = re.findall(r"^\| `([a-z_]+)` \|", DOCS.read_text(encoding="utf-8"), re.MULTILINE)
    assert tuple(documented) == COLUMN_NAMES
