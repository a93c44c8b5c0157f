"""Import: lossless round trips, plain history from elsewhere, all-or-nothing validation,
idempotence, and a full disk."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from cascadeflow_cli.errors import LedgerError
from cascadeflow_cli.ledger.db import Ledger, open_ledger
from cascadeflow_cli.ledger.importer import ImportRowError, detect_format, import_file, infer_provider
from tests.conftest import FIXTURES
from tests.ledger.test_export import export_text, make_ledger

HEADER = "timestamp,user,model,cost,input_tokens,output_tokens\n"
GOOD = "2026-03-02T09:00:00Z,alice,gpt-4o-mini,0.0001,10,5\n"


def table(ledger: Ledger, name: str) -> list[dict[str, object]]:
    conn = ledger.db.conn
    cursor = conn.execute(f"select * from {name} order by id")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def counts(ledger: Ledger) -> tuple[int, int]:
    conn = ledger.db.conn
    return (conn.execute("select count(*) from requests").fetchone()[0],
            conn.execute("select count(*) from calls").fetchone()[0])


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_export_import_export_is_identical(tmp_path: Path, fmt: str) -> None:
    source = make_ledger(tmp_path / "a.db")
    first = export_text(source, fmt)
    path = tmp_path / f"export.{fmt}"
    path.write_text(first, encoding="utf-8", newline="")
    target = open_ledger(tmp_path / "b.db")
    result = import_file(target, path)
    assert (result.format, result.requests, result.calls) == (fmt, 5, 5)
    assert (result.new_requests, result.new_calls) == (5, 5)
    assert export_text(target, fmt) == first


def test_round_trip_keeps_the_ledger_rows(tmp_path: Path) -> None:
    """Beyond identical files: the imported rows are the rows (floats to 15 digits, and a
    CSV cannot tell an empty text from a missing one)."""
    source = make_ledger(tmp_path / "a.db")
    path = tmp_path / "export.jsonl"
    path.write_text(export_text(source, "jsonl"), encoding="utf-8")
    target = open_ledger(tmp_path / "b.db")
    import_file(target, path)
    for name in ("requests", "calls"):
        before, after = table(source, name), table(target, name)
        assert len(before) == len(after)
        for old, new in zip(before, after, strict=True):
            for key, value in old.items():
                if isinstance(value, float):
                    assert new[key] == pytest.approx(value, rel=1e-14), (name, key)
                else:
                    assert new[key] == value, (name, old["id"], key)


def test_long_texts_survive_a_csv_round_trip(tmp_path: Path) -> None:
    from tests.ledger.test_export import call, request

    long_answer = "word, " * 50_000  # 300 KB, past the csv module's default field limit
    ts = "2026-11-01T08:00:00.000000Z"
    long_call = call("r1", 0, ts, answer=long_answer)
    source = make_ledger(tmp_path / "a.db", [request("r1", ts, "alice", (long_call,))])
    path = tmp_path / "export.csv"
    path.write_text(export_text(source, "csv"), encoding="utf-8", newline="")
    target = open_ledger(tmp_path / "b.db")
    import_file(target, path)
    assert table(target, "calls")[0]["answer"] == long_answer


def test_importing_twice_adds_nothing(tmp_path: Path) -> None:
    target = open_ledger(tmp_path / "b.db")
    path = FIXTURES / "history_bom_crlf.csv"
    first = import_file(target, path)
    second = import_file(target, path)
    assert (first.new_requests, first.new_calls) == (5, 5)
    assert (second.requests, second.new_requests, second.new_calls) == (5, 0, 0)
    assert second.skipped_requests == 5
    assert counts(target) == (5, 5)


def test_plain_history_with_bom_crlf_aliases_and_dollar_signs(tmp_path: Path) -> None:
    target = open_ledger(tmp_path / "b.db")
    result = import_file(target, FIXTURES / "history_bom_crlf.csv", timezone="Europe/Berlin")
    assert result.ignored_columns == ("notes",)
    rows = sorted(table(target, "calls"), key=lambda c: (c["ts"], c["model"]))
    assert [(c["ts"], c["model"], c["provider"], c["cost_nusd"]) for c in rows] == [
        ("2026-03-02T08:15:00.000000Z", "gpt-4o-mini", "openai", 123_000),  # naive: Berlin time
        ("2026-03-02T09:00:00.000000Z", "openai/gpt-4o", "openai", 12_500_000),
        ("2026-03-02T23:00:00.000000Z", "claude-3-5-haiku-20241022", "anthropic", 500_000_000),
        ("2026-03-02T23:00:00.000000Z", "claude-3-5-haiku-20241022", "anthropic", 500_000_000),
        ("2026-03-04T12:00:00.000000Z", "my-local-llama", "unknown", 0),
    ]
    assert [(c["input_tokens"], c["output_tokens"]) for c in rows][:3] == [(100, 50), (1000, 1000), (0, 0)]
    assert {c["role"] for c in rows} == {"verifier"} and {c["cost_source"] for c in rows} == {"import"}
    requests = table(target, "requests")
    assert all(r["status"] == "ok" and r["savings_nusd"] == 0 for r in requests)
    assert all(r["verifier_only_cost_nusd"] == r["cost_nusd"] for r in requests)
    assert len({r["id"] for r in requests}) == 5  # identical rows are two calls, two ids


def test_ids_of_plain_rows_depend_on_content_not_on_position(tmp_path: Path) -> None:
    rows = ["2026-03-02T09:00:00Z,alice,gpt-4o-mini,0.0001,10,5\n",
            "2026-03-02T09:05:00Z,bob,gpt-4o,0.01,10,5\n"]
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text(HEADER + rows[0], encoding="utf-8")
    second.write_text(HEADER + rows[1] + rows[0], encoding="utf-8")  # the old row moved down
    target = open_ledger(tmp_path / "b.db")
    import_file(target, first)
    result = import_file(target, second)
    assert (result.new_requests, result.skipped_requests) == (1, 1)


BAD_ROWS = [
    ("2026-13-02T09:00:00Z,alice,gpt-4o-mini,0.0001,10,5", "timestamp is not an ISO 8601"),
    ("yesterday,alice,gpt-4o-mini,0.0001,10,5", "timestamp is not an ISO 8601"),
    ("2026-03-02T09:00:00Z,alice,gpt-4o-mini,-0.0001,10,5", "cost is negative"),
    ("2026-03-02T09:00:00Z,alice,gpt-4o-mini,abc,10,5", "cost is not a number: 'abc'"),
    ("2026-03-02T09:00:00Z,alice,gpt-4o-mini,NaN,10,5", "cost is not a finite number"),
    ("2026-03-02T09:00:00Z,alice,gpt-4o-mini,,10,5", "cost is empty"),
    # below a nano-dollar: it was stored as $0, a paid call made free
    ("2026-03-02T09:00:00Z,alice,gpt-4o-mini,0.0000000004,10,5",
     "cost 0.0000000004 is below $0.000000001, the smallest amount the ledger counts"),
    ("2026-03-02T09:00:00Z,alice,gpt-4o-mini,4e-10,10,5", "cost 4e-10 is below $0.000000001"),
    ("2026-03-02T09:00:00Z,,gpt-4o-mini,0.1,10,5", "user is empty"),
    ("2026-03-02T09:00:00Z,alice,gpt-4o-mini,0.1,ten,5", "input_tokens is not a number"),
    ("2026-03-02T09:00:00Z,alice,gpt-4o-mini,0.1,1.5,5", "input_tokens must be a whole number"),
    ("2026-03-02T09:00:00Z,alice,gpt-4o-mini,0.1,10", "expected 6 fields, found 5"),
    ('2026-03-02T09:00:00Z,alice,"gpt-4o-mini,0.1,10,5', "found 3 (an unclosed double quote?)"),
]


@pytest.mark.parametrize(("row", "reason"), BAD_ROWS)
def test_one_bad_row_aborts_with_file_line_and_reason(tmp_path: Path, row: str, reason: str) -> None:
    path = tmp_path / "history.csv"
    later = GOOD.replace("09:00", "10:00")
    path.write_text(HEADER + GOOD + GOOD.replace("09:00", "09:01") + row + "\n" + later, encoding="utf-8")
    target = open_ledger(tmp_path / "b.db")
    with pytest.raises(ImportRowError) as info:
        import_file(target, path)
    assert str(info.value).startswith(f"{path}:4: "), info.value
    assert reason in str(info.value)
    assert counts(target) == (0, 0)


def test_the_bad_row_fixture(tmp_path: Path) -> None:
    target = open_ledger(tmp_path / "b.db")
    with pytest.raises(ImportRowError, match=r"history_bad_row\.csv:4: cost is negative: -0\.5"):
        import_file(target, FIXTURES / "history_bad_row.csv")
    assert counts(target) == (0, 0)


@pytest.mark.parametrize(("header", "reason"), [
    ("timestamp,user,model,input_tokens\n", "missing column(s) cost"),
    ("when,who,what,price\n", "missing column(s) timestamp, user, model, cost"),
    ("timestamp,user,model,cost,Cost\n", "column 'cost' appears twice"),
])
def test_wrong_columns(tmp_path: Path, header: str, reason: str) -> None:
    path = tmp_path / "history.csv"
    path.write_text(header + "2026-03-02,alice,gpt-4o,1\n", encoding="utf-8")
    with pytest.raises(ImportRowError, match=rf"history\.csv:1: {re.escape(reason)}"):
        import_file(open_ledger(tmp_path / "b.db"), path)


@pytest.mark.parametrize(("content", "reason"), [
    ("", "the file is empty"),
    (HEADER, "no rows to import"),
    (b"timestamp,user,model,cost\n2026-03-02,al\xffce,gpt-4o,1\n", "not UTF-8 text"),
])
def test_empty_and_undecodable_files(tmp_path: Path, content: str | bytes, reason: str) -> None:
    path = tmp_path / "history.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ImportRowError, match=reason):
        import_file(open_ledger(tmp_path / "b.db"), path)


def test_export_rows_must_keep_requests_together_and_ids_plain(tmp_path: Path) -> None:
    text = export_text(make_ledger(tmp_path / "a.db"), "csv")
    header, *lines = text.split("\r\n")[:-1]
    # r2's verifier row moved after r3's row (r2's query spans two lines: it starts on line 6)
    split = tmp_path / "split.csv"
    split.write_text("\r\n".join([header, lines[0], lines[1], lines[3], lines[2]]) + "\r\n",
                     encoding="utf-8")
    with pytest.raises(ImportRowError, match=r"split\.csv:6: rows of request r2 are not together"):
        import_file(open_ledger(tmp_path / "b.db"), split)
    comma = tmp_path / "comma.csv"
    comma.write_text("\r\n".join([header, '"r1,0"' + lines[0][4:]]) + "\r\n", encoding="utf-8")
    with pytest.raises(ImportRowError, match=r"comma\.csv:2: id must not contain commas"):
        import_file(open_ledger(tmp_path / "c.db"), comma)


def test_json_arrays_in_any_layout_and_jsonl_errors(tmp_path: Path) -> None:
    pretty = tmp_path / "pretty.json"
    pretty.write_text('[\n  {\n    "timestamp": "2026-03-02T09:00:00Z",\n    "user": "alice",\n'
                      '    "model": "gpt-4o", "cost": 0.25\n  }\n]\n', encoding="utf-8")
    target = open_ledger(tmp_path / "b.db")
    assert import_file(target, pretty).new_requests == 1
    assert table(target, "calls")[0]["cost_nusd"] == 250_000_000
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"timestamp": "2026-03-02", "user": "a", "model": "m", "cost": 1}\n{oops\n',
                   encoding="utf-8")
    with pytest.raises(ImportRowError, match=r"bad\.jsonl:2: not valid JSON"):
        import_file(target, bad)
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"timestamp": "2026-03-02", "user": "a", "model": "m"}\n', encoding="utf-8")
    with pytest.raises(ImportRowError, match=r"missing\.jsonl:1: missing field\(s\) cost"):
        import_file(target, missing)


def test_format_detection(tmp_path: Path) -> None:
    for name, text, fmt in (("a.txt", "[\n]\n", "json"), ("b", '{"a": 1}\n', "jsonl"),
                            ("c.data", "timestamp,user\n", "csv"), ("d.ndjson", "", "jsonl")):
        (tmp_path / name).write_text(text, encoding="utf-8")
        assert detect_format(tmp_path / name) == fmt


def test_provider_inference() -> None:
    assert infer_provider("anthropic/claude-3-opus") == "anthropic"
    assert infer_provider("gpt-4o-mini") == "openai"
    assert infer_provider("no-such-model-anywhere") == "unknown"


def test_a_full_disk_imports_nothing(tmp_path: Path) -> None:
    """SQLITE_FULL half-way through the one transaction: rolled back, one clear error."""
    target = open_ledger(tmp_path / "b.db")
    conn: sqlite3.Connection = target.db.conn
    pages = conn.execute("pragma page_count").fetchone()[0]
    conn.execute(f"pragma max_page_count = {pages + 2}")
    path = tmp_path / "history.csv"
    path.write_text(HEADER + "".join(f"2026-03-02T09:{i // 60:02d}:{i % 60:02d}Z,user{i % 7},gpt-4o,0.01,"
                                     f"{i},5\n" for i in range(2000)), encoding="utf-8")
    with pytest.raises(LedgerError, match="database or disk is full"):
        import_file(target, path)
    assert counts(target) == (0, 0)


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("role", "verfier", "unknown role 'verfier' (one of draft, verifier, sample, shadow, external)"),
    ("status", "okay", "unknown status 'okay' (one of ok, error, interrupted)"),
    ("request_status", "done", "unknown request_status 'done' (one of ok, error, interrupted, blocked)"),
])
def test_an_unknown_role_or_status_is_refused_with_its_line(tmp_path: Path, field: str, value: str,
                                                            reason: str) -> None:
    """They were stored as they came: a 'verfier' call was no verifier to any report."""
    good = '{"timestamp": "2026-03-02T09:00:00Z", "user": "alice", "model": "m", "cost": 0.1}\n'
    bad = good.replace('"cost"', f'"{field}": "{value}", "cost"')
    path = tmp_path / "history.jsonl"
    path.write_text(good + bad, encoding="utf-8")
    target = open_ledger(tmp_path / "b.db")
    with pytest.raises(ImportRowError) as info:
        import_file(target, path)
    assert str(info.value) == f"{path}:2: {reason}"
    assert counts(target) == (0, 0)
    path.write_text(good + good.replace('"cost"', f'"{field}": "error", "cost"' if field != "role"
                                        else '"role": "draft", "cost"'), encoding="utf-8")
    assert import_file(target, path).new_requests == 2  # the ledger's own words import
