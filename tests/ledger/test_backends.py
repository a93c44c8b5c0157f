"""The storage interface on both backends (``ledger_url`` runs each test on a SQLite file
and on a real PostgreSQL database): the same records in, the same answers out."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cascadeflow_cli.clock import FixedClock, format_ts
from cascadeflow_cli.ledger import schema
from cascadeflow_cli.ledger.backend import open_store
from cascadeflow_cli.ledger.budgets import BudgetConfig
from cascadeflow_cli.ledger.copy import TABLES as COPIED_TABLES
from cascadeflow_cli.ledger.copy import copy_ledger
from cascadeflow_cli.ledger.export import LedgerFilter
from cascadeflow_cli.ledger.keys import create_key
from cascadeflow_cli.ledger.labels import ShadowOutcome
from cascadeflow_cli.ledger.schema import CallRecord, CallSignals, RequestRecord
from cascadeflow_cli.windows import window
from tests.pg_fixtures import empty_ledger

NOW = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)  # the day Europe/Berlin has 23 hours


def request(n: int, at: datetime, user: str = "alice", cost: int = 1_000, calls: int = 1,
            external_id: str | None = None, signals: bool = False) -> RequestRecord:
    rid = f"req{n:05d}"
    ts = format_ts(at)
    return RequestRecord(
        id=rid, ts=ts, user=user, status="ok", query=f"q{n}, with \"quotes\"\nand a line", answer="a",
        domain="general", model="mini", cost_nusd=cost * calls, latency_ms=12.5 + n / 3,
        external_id=external_id, quality_reasons=("short", "ok"),
        calls=tuple(CallRecord(id=f"{rid}-{k}", request_id=rid, ts=ts, seq=k,
                               role="draft" if k == 0 else "verifier", model="mini" if k == 0 else "big",
                               model_id="openai/x", provider="openai", status="ok", input_tokens=10,
                               output_tokens=20, cost_nusd=cost, latency_ms=0.1 + 0.2, quality_score=1 / 3,
                               accepted=k == 0)
                    for k in range(calls)),
        signals=(CallSignals(f"{rid}-0", logprobs=(-0.25, -1.5), samples=3, agreement=2 / 3,
                             features={"length": 12.0, "hedges": 0.0}),) if signals else ())


def test_record_is_idempotent_and_reads_back(ledger_url: str) -> None:
    with open_store(ledger_url, FixedClock(NOW)) as ledger:
        r = request(1, NOW, calls=2)
        ledger.record(r)
        ledger.record(r)  # a journal replay after the ledger already took it
        rows = ledger.recent_requests(limit=None)
        assert [x["id"] for x in rows] == ["req00001"]
        assert [c["seq"] for c in rows[0]["calls"]] == [0, 1]
        assert rows[0]["ts"] == r.ts and rows[0]["cost_nusd"] == 2_000
        assert ledger.total_spend("alice") == 2_000 and ledger.request_count("alice") == 1


def test_window_spend_on_and_off_the_buckets(ledger_url: str) -> None:
    with open_store(ledger_url, FixedClock(NOW)) as ledger:
        day = window("daily", NOW, "Europe/Berlin")  # starts 2026-03-28T23:00Z
        ledger.record_many([
            request(1, day.start - timedelta(microseconds=1), cost=1),  # the day before
            request(2, day.start, cost=10),
            request(3, NOW, cost=100),
            request(4, day.end - timedelta(microseconds=1), cost=1_000),
            request(5, day.end, cost=10_000),  # the next day
            request(6, NOW, user="bob", cost=7),
        ])
        assert ledger.window_spend("alice", day) == 1_110
        assert ledger.window_spend("alice", window("total", NOW, "UTC")) == 11_111
        # off the 15-minute grid: summed from the rows
        odd = type(day)("daily", NOW - timedelta(minutes=7), NOW + timedelta(seconds=1))
        assert ledger.window_spend("alice", odd) == 100


def test_budgets_set_merge_list_remove(ledger_url: str) -> None:
    with open_store(ledger_url, FixedClock(NOW)) as ledger:
        ledger.set_budget("alice", BudgetConfig(daily=Decimal("1.5")))
        stored = ledger.set_budget("alice", BudgetConfig(total=Decimal("0.000000001")))
        assert stored == BudgetConfig(daily=Decimal("1.5"), total=Decimal("0.000000001"))
        assert ledger.get_budget("alice") == stored and ledger.get_budget("bob") is None
        assert ledger.list_budgets() == [("alice", stored)]
        assert ledger.remove_budget("alice") and not ledger.remove_budget("alice")


def test_daily_totals_in_a_zone_with_a_short_day(ledger_url: str) -> None:
    with open_store(ledger_url, FixedClock(NOW)) as ledger:
        start = datetime(2026, 3, 28, 22, 30, tzinfo=UTC)
        ledger.record_many([request(n, start + timedelta(hours=n), cost=n) for n in range(30)])
        days = ledger.daily_totals(by=None, user="alice", model=None, timezone="Europe/Berlin",
                                   start=date(2026, 3, 28), end=date(2026, 3, 30))[None]
        # 22:30Z is 23:30 on the 28th; the 29th has 23 local hours (n = 1..23)
        assert days == {date(2026, 3, 28): 0, date(2026, 3, 29): sum(range(1, 24)),
                        date(2026, 3, 30): sum(range(24, 30))}
        by_model = ledger.daily_totals(by="model", user=None, model=None, timezone="UTC",
                                       start=None, end=None)
        assert set(by_model) == {"mini"}


def test_record_many_skips_what_is_there_by_id_and_by_batch_row(ledger_url: str) -> None:
    with open_store(ledger_url, FixedClock(NOW)) as ledger:
        first = ledger.record_many([request(1, NOW, external_id="b:1"), request(2, NOW)])
        assert (first.requests, first.calls) == (2, 2)
        again = ledger.record_many([request(1, NOW), request(3, NOW, external_id="b:1"), request(4, NOW)])
        assert (again.requests, again.calls) == (1, 1)
        assert ledger.committed_rows("b") == {"1": "req00001"}
        assert ledger.committed_queries("b") == {"1": "q1, with \"quotes\"\nand a line"}
        assert ledger.total_spend("alice") == 3_000


def _tables(store: object) -> dict[str, list[dict[str, object]]]:
    """Every row of every table a copy carries (the spend aggregates are derived, and hold
    their buckets in each dialect's own type)."""
    return {t.name: list(store.table_rows(t))  # type: ignore[attr-defined]
            for t in (schema.REQUESTS, schema.CALLS, *COPIED_TABLES)}


@pytest.mark.parametrize("direction", ["sqlite->postgresql", "postgresql->sqlite"])
def test_copy_between_backends_is_lossless(direction: str, tmp_path: Path, pg_ledger_url: str) -> None:
    lite = str(tmp_path / "l.db")
    source, target = (lite, pg_ledger_url) if direction.startswith("sqlite") else (pg_ledger_url, lite)
    with open_store(source, FixedClock(NOW)) as src:
        batch = src.start_batch(tmp_path / "out.jsonl", tmp_path / "in.jsonl")
        records = [request(n, NOW - timedelta(hours=n), user=("alice", "bob")[n % 2], calls=1 + n % 2,
                           external_id=f"{batch}:{n}" if n < 5 else None,
                           signals=n % 3 == 0) for n in range(40)]
        src.record_many(records)
        src.set_budget("alice", BudgetConfig(daily=Decimal("2"), total=Decimal("10.5")))
        src.record_feedback("req00001", False, note="wrong, \"really\"\nsee notes")
        src.record_feedback("req00002", True)
        shadow = ShadowOutcome("req00002", "ok", correct=True, agreement=0.875, method="judge")
        src.record_shadow(shadow, None)
        _, key = create_key(src, "bob", "ci", rpm=60, budget=BudgetConfig(total=Decimal("3")))
        src.add_rows(schema.API_KEY_REQUESTS, [{"request_id": "req00001", "prefix": key.prefix}])
        exports = {fmt: [row for batch in src.export_rows(fmt, LedgerFilter()) for row in batch]
                   for fmt in ("csv", "json")}
        tables = _tables(src)
        assert [len(tables[t.name]) for t in COPIED_TABLES] == [1, 3, 14, 1, 1]  # something to carry
        with open_store(target, FixedClock(NOW)) as dst:
            report = copy_ledger(src, dst)
            assert (report.requests, report.budgets) == (40, 1)
            assert report.tables == {"batches": 1, "quality_labels": 3, "call_signals": 14, "api_keys": 1,
                                     "api_key_requests": 1}
            for fmt, rows in exports.items():
                assert [row for batch in dst.export_rows(fmt, LedgerFilter()) for row in batch] == rows, fmt
            assert _tables(dst) == tables
            assert dst.list_budgets() == src.list_budgets()
            assert dst.committed_rows(batch) == src.committed_rows(batch)  # batch --resume resumes there
            assert dst.labelled_drafts() == src.labelled_drafts()  # calibration sees the same data
            again = copy_ledger(src, dst)  # run again: nothing twice
            assert (again.requests, again.tables) == (0, {t.name: 0 for t in COPIED_TABLES})
    # and back, into an empty ledger of the source's kind: the same again
    back = str(tmp_path / "back.db") if source == lite else source
    if source != lite:
        empty_ledger(back)
    with open_store(target, FixedClock(NOW)) as dst, open_store(back, FixedClock(NOW)) as home:
        copy_ledger(dst, home)
        assert _tables(home) == tables


def test_quality_labels_feedback_replaces_and_feeds_calibration(ledger_url: str) -> None:
    from cascadeflow_cli.errors import InputError

    with open_store(ledger_url, FixedClock(NOW)) as ledger:
        ledger.record(request(1, NOW))
        assert ledger.record_feedback("req00001", True) is False
        assert ledger.record_feedback("req00001", False, note="wrong after all") is True
        labels = ledger.labels_for("req00001")
        assert [(x["source"], x["correct"], x["note"]) for x in labels] == [
            ("feedback", 0, "wrong after all")]
        drafts = ledger.labelled_drafts()
        assert [(d["id"], d["call_id"], d["feedback"]) for d in drafts] == [("req00001", "req00001-0", 0)]
        assert ledger.next_seq("req00001") == 1
        with pytest.raises(InputError, match="no request 'nope'"):
            ledger.record_feedback("nope", True)


def test_a_budget_check_for_a_user_name_full_of_quotes(ledger_url: str) -> None:
    """PostgreSQL's check sends its arguments as SQL literals: a name is data, never SQL."""
    from cascadeflow_cli.config import parse_config
    from cascadeflow_cli.ledger.enforcement import BudgetGate

    user = "o'brien \\\"; delete from requests; --"
    with open_store(ledger_url, FixedClock(NOW)) as ledger:
        ledger.record(request(1, NOW, user=user))
        ledger.set_budget(user, BudgetConfig(daily=Decimal("1")))
        gate = BudgetGate(ledger, parse_config('[budgets]\nmode = "block"\n'))

        def ask(request_id: str) -> Any:
            return gate.reserve(user, request_id, ["mini"], estimate=lambda m: 600_000_000,
                                degraded=lambda m: None, ttl_s=60)

        first = ask("a")
        assert first.action == "allow" and ledger.reserved_spend(user) == 600_000_000
        assert ask("b").action == "block"  # $0.60 held + $0.60 asked > $1
        ledger.release(first.reservation_id)
        assert ledger.reserved_spend(user) == 0 and ledger.total_spend(user) == 1_000


@pytest.mark.parametrize("direction", ["sqlite->postgresql", "postgresql->sqlite"])
def test_a_copy_again_carries_a_revocation_never_an_unrevocation(direction: str, tmp_path: Path,
                                                                 pg_ledger_url: str) -> None:
    """A key already on the target was kept as it was there: revoked on the source after
    an earlier copy, it still opened `serve` on the target. Revocation is monotone."""
    from cascadeflow_cli.ledger.keys import authenticate, revoke_key

    lite = str(tmp_path / "l.db")
    source, target = (lite, pg_ledger_url) if direction.startswith("sqlite") else (pg_ledger_url, lite)
    with open_store(source, FixedClock(NOW)) as src, open_store(target, FixedClock(NOW)) as dst:
        gone, gone_key = create_key(src, "alice", "laptop")
        kept, kept_key = create_key(src, "alice", "ci")
        copy_ledger(src, dst)
        assert authenticate(dst, gone) is not None
        revoked = revoke_key(src, gone_key.prefix).revoked_at
        report = copy_ledger(src, dst)
        assert authenticate(dst, gone) is None and authenticate(dst, kept) is not None
        assert report.revoked == 1 and report.tables["api_keys"] == 0
        assert {k["prefix"]: k["revoked_at"] for k in dst.table_rows(schema.API_KEYS)} == \
            {k["prefix"]: k["revoked_at"] for k in src.table_rows(schema.API_KEYS)}
        assert revoked is not None
        # revoked on the target only: a copy from a source where it is active leaves it revoked
        revoke_key(dst, kept_key.prefix)
        copy_ledger(src, dst)
        assert authenticate(dst, kept) is None


def test_a_legacy_user_is_found_by_its_spelling(ledger_url: str) -> None:
    """`--user 'alice\\x0d'` of the read commands: among users with spend, a budget or a key."""
    from cascadeflow_cli.ledger.budgets import spelled_user

    with open_store(ledger_url, FixedClock(NOW)) as ledger:
        ledger.record_many([request(1, NOW, user="alice\r"), request(2, NOW, user="bo\\x0d")])
        ledger.set_budget(" eve", BudgetConfig(daily=Decimal("1")))
        create_key(ledger, "carol")
        ledger.add_rows(schema.API_KEYS, [{**next(iter(ledger.table_rows(schema.API_KEYS))),
                                           "prefix": "sk-cf-legacy00", "key_hash": "h", "user": "dan\x1b"}])
        assert spelled_user(ledger, "alice\\x0d") == "alice\r"
        assert spelled_user(ledger, "\\x20eve") == " eve"
        assert spelled_user(ledger, "dan\\x1b") == "dan\x1b"
        assert spelled_user(ledger, "bo\\x0d") is None  # a stored name of its own: itself
        assert spelled_user(ledger, "carol") is None and spelled_user(ledger, "zed\\x0d") is None


FORMULAS = ("=HYPERLINK(\"http://x\")", "+1+1", "-2", "@SUM(A1)", "\tx", "\rx", "'=quoted", "''-two",
            "'plain", "a=b", "", "'")


def test_csv_export_defuses_formula_cells_alike_on_both_backends(ledger_url: str) -> None:
    """A user or query starting with =, +, -, @, tab or CR ran as a formula in the
    spreadsheet that opened the export; such a text cell starts with ' now (JSON is as stored)."""
    import csv
    import io

    from cascadeflow_cli.ledger.export import csv_restored

    with open_store(ledger_url, FixedClock(NOW)) as ledger:
        ledger.record_many([replace_query(request(n, NOW, user=f"u{n}"), text)
                            for n, text in enumerate(FORMULAS)])
        lines = [row for batch in ledger.export_rows("csv", LedgerFilter()) for row in batch]
        cells = [row[-2] for row in csv.reader(io.StringIO("\r\n".join(lines), newline=""))]
        assert cells == ["'=HYPERLINK(\"http://x\")", "'+1+1", "'-2", "'@SUM(A1)", "'\tx", "'\rx",
                         "''=quoted", "'''-two", "'plain", "a=b", "", "'"]
        assert [csv_restored(c) for c in cells] == list(FORMULAS)
        as_json = [row for batch in ledger.export_rows("jsonl", LedgerFilter()) for row in batch]
        assert '"query":"=HYPERLINK(\\"http://x\\")"' in as_json[0].replace(" ", "")


def replace_query(record: RequestRecord, text: str) -> RequestRecord:
    from dataclasses import replace

    return replace(record, query=text or None)
