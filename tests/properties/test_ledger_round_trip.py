"""Whole ledger rows (every status and role, texts with commas, quotes, line breaks and
any Unicode, NULLs, sub-cent and $1e9 costs) through export -> import into a fresh ledger
-> export: the second export is the first, byte for byte, in each format; importing it
again adds nothing."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cascadeflow_cli.clock import format_ts
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.ledger.schema import (
    CALL_ROLES,
    CALL_STATUSES,
    REQUEST_STATUSES,
    CallRecord,
    RequestRecord,
)
from cascadeflow_cli.money import MAX_AMOUNT_USD, NANOS_PER_USD
from tests.properties.harness import run, scratch

pytestmark = pytest.mark.slow

MAX_NUSD = int(MAX_AMOUNT_USD) * NANOS_PER_USD
# texts a user can put in a ledger: any character but lone surrogates (no text to store) and
# NUL ... kept: NUL is the CSV's own round trip case; line breaks, quotes and commas kept
tricky = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=24).filter(str.strip)
maybe = st.none() | tricky
# a user name holding a control or format character is refused at the door (text.user_name),
# and every entry point stores it in NFC: a legacy non-NFC name ('\uf900', stored so by an
# older version) is NFC after an import, by design (tests/cli/test_legacy_users.py), so it
# cannot come back byte for byte (hypothesis found it: '\uf900' exported, U+8C48 imported)
users = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Zl", "Zp")), min_size=1,
                max_size=12).map(lambda s: unicodedata.normalize("NFC", s).strip()).filter(bool)
costs = st.integers(0, 9) | st.integers(0, 10**7) | st.integers(0, MAX_NUSD)  # nano-dollars
stamps = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9000, 1, 1),
                      timezones=st.just(UTC)).map(format_ts)
scores = st.none() | st.floats(0, 1)


@st.composite
def requests(draw: st.DrawFn, number: int) -> RequestRecord:
    rid, ts = f"r{number}", draw(stamps)
    calls = tuple(
        CallRecord(id=f"{rid}-{seq}", request_id=rid, ts=ts, seq=seq, role=draw(st.sampled_from(CALL_ROLES)),
                   model=draw(st.sampled_from(["mini", "big", "ünï, \"q\""])), model_id="openai/gpt-4o-mini",
                   provider="openai", status=draw(st.sampled_from(CALL_STATUSES)),
                   input_tokens=draw(st.integers(0, 10**9)), output_tokens=draw(st.integers(0, 10**9)),
                   cost_nusd=draw(costs), latency_ms=draw(st.floats(0, 1e6)), quality_score=draw(scores),
                   quality_reasons=tuple(draw(st.lists(tricky, max_size=2))),
                   accepted=draw(st.none() | st.booleans()), answer=draw(maybe), error=draw(maybe),
                   finish_reason=draw(st.none() | st.sampled_from(["stop", "length"])))
        for seq in range(draw(st.integers(0, 3))))
    return RequestRecord(
        id=rid, ts=ts, user=draw(users), status=draw(st.sampled_from(REQUEST_STATUSES)), query=draw(maybe),
        answer=draw(maybe), domain=draw(st.none() | st.sampled_from(["code", "math"])),
        domain_confidence=draw(scores), model=calls[-1].model if calls else None,
        draft_model=calls[0].model if calls else None, draft_accepted=draw(st.booleans()),
        escalated=len(calls) > 1, quality_score=draw(scores), cost_nusd=sum(c.cost_nusd for c in calls),
        verifier_only_cost_nusd=draw(costs), savings_nusd=draw(costs),
        enforcement=draw(st.sampled_from(["allow", "warn", "degrade", "block"])),
        enforcement_message=draw(maybe), latency_ms=draw(st.floats(0, 1e6)), error=draw(maybe),
        external_id=draw(st.none() | st.just(f"b1:{number}")), calls=calls)


ledgers = st.integers(1, 5).flatmap(lambda n: st.tuples(*(requests(i) for i in range(n))))


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
@given(records=ledgers)
def test_export_import_export_is_identical(records: tuple[RequestRecord, ...], fmt: str) -> None:
    with scratch() as tmp:
        root = Path(tmp)
        source = open_ledger(root / "a.db")
        try:
            for record in records:
                source.record(record)
        finally:
            source.close()
        first = run("--db", str(root / "a.db"), "export", f"--{fmt}", "-o", str(root / f"x.{fmt}"))
        assert first.code == 0, first.stderr
        imported = run("--db", str(root / "b.db"), "import", str(root / f"x.{fmt}"))
        assert imported.code == 0, imported.stderr
        again = run("--db", str(root / "b.db"), "export", f"--{fmt}", "-o", str(root / f"y.{fmt}"))
        assert again.code == 0, again.stderr
        assert (root / f"y.{fmt}").read_bytes() == (root / f"x.{fmt}").read_bytes()
        twice = run("--db", str(root / "b.db"), "import", str(root / f"y.{fmt}"))
        assert twice.code == 0 and "imported 0 requests" in twice.stderr, twice.stderr
