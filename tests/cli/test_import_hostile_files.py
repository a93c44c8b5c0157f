"""`cascade import` given hostile files: each gives one `error:` line, exit 1 and a ledger
byte-for-byte unchanged (import is all or nothing, CLI.md), or imports what it says it did.
Run in process through main() (tests/properties/harness.py), on a real SQLite ledger."""

from __future__ import annotations

import gzip
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.support import rows
from tests.conftest import CliRunner
from tests.properties.harness import fingerprint, run, seeded_ledger

HEADER = "timestamp,user,model,cost\n"
ROW = "2026-05-02T10:00:00Z,bob,openai/gpt-4o,0.25\n"


def _csv(*lines: str) -> bytes:
    return (HEADER + "".join(line + "\n" for line in lines)).encode()


def _jsonl_row(**fields: str) -> str:
    row = {"timestamp": '"2026-05-02T10:00:00Z"', "user": '"bob"', "model": '"m"', "cost": "1"}
    row.update(fields)
    return "{" + ", ".join(f'"{k}": {v}' for k, v in row.items()) + "}"


# name -> (file bytes, what the error line says)
REFUSED = {
    "quoted_newline.csv": (HEADER.encode() + b'2026-05-02T10:00:00Z,"b\nob",m,1\n', "control character"),
    "million_columns.csv": (_csv("2026-05-02T10:00:00Z,bob,m,1" + "," * 1_000_000), "found 1000004"),
    "duplicate_header.csv": (b"timestamp,user,model,cost,Cost\n", "column 'cost' appears twice"),
    "missing_column.csv": (b"timestamp,user,cost\n2026-05-02T10:00:00Z,bob,1\n", "missing column(s) model"),
    "e309.csv": (_csv("2026-05-02T10:00:00Z,bob,m,1e309"), "above the maximum"),
    "long_digits.csv": (_csv("2026-05-02T10:00:00Z,bob,m," + "9" * 100_000), "1.000000E+100000 is above"),
    "long_tiny.csv": (_csv("2026-05-02T10:00:00Z,bob,m,0." + "0" * 100_000 + "1"), "cost 1E-100001 is"),
    # abs() in the context's precision: 'unexpected Overflow', and the tiny one imported as $0
    "huge_exponent.csv": (_csv("2026-05-02T10:00:00Z,bob,m,1e99999999999"), "above the maximum"),
    "tiny_exponent.csv": (_csv("2026-05-02T10:00:00Z,bob,m,1e-99999999999"), "below $0.000000001"),
    "comma_decimal.csv": (_csv('2026-05-02T10:00:00Z,bob,m,"5,00"'), "cost is not a number: '5,00'"),
    "nan.csv": (_csv("2026-05-02T10:00:00Z,bob,m,NaN"), "not a finite number"),
    # Decimal() and int() read other scripts' digits: '٣' imported as $3, '５' tokens as 5
    "arabic_digit.csv": (_csv("2026-05-02T10:00:00Z,bob,m,٣"), "cost is not a number: '٣'"),
    "persian_digit.csv": ("timestamp,user,model,cost,input_tokens\n2026-05-02T10:00:00Z,bob,m,1,۵\n".encode(),
                          "input_tokens is not a number: '۵'"),
    "fullwidth_digit.jsonl": (_jsonl_row(output_tokens='"５"').encode(), "output_tokens is not a number"),
    # docs/ledger-columns.md: quality_score is in [0, 1]; -5 and 7 were imported as given
    "score_negative.csv": (b"timestamp,user,model,cost,quality_score\n2026-05-02T10:00:00Z,bob,m,1,-5\n",
                           "quality_score must be between 0 and 1, got '-5'"),
    "score_seven.jsonl": (_jsonl_row(quality_score="7").encode(), "quality_score must be between 0 and 1"),
    "score_nan.jsonl": (_jsonl_row(quality_score="NaN").encode(), "quality_score is not a finite number"),
    # hostile-26: domain_confidence in [0, 1], latencies >= 0 (-3 and 1.5 were stored as given)
    "confidence_above_one.csv": (b"timestamp,user,model,cost,domain_confidence\n"
                                 b"2026-05-02T10:00:00Z,bob,m,1,1.5\n",
                                 "domain_confidence must be between 0 and 1, got '1.5'"),
    "confidence_negative.jsonl": (_jsonl_row(domain_confidence="-0.2").encode(),
                                  "domain_confidence must be between 0 and 1"),
    "latency_negative.csv": (b"timestamp,user,model,cost,latency_ms\n2026-05-02T10:00:00Z,bob,m,1,-3\n",
                             "latency_ms must be >= 0, got '-3'"),
    "request_latency_negative.jsonl": (_jsonl_row(request_latency_ms="-1e-9").encode(),
                                       "request_latency_ms must be >= 0"),
    "latency_infinite.jsonl": (_jsonl_row(latency_ms="1e400").encode(), "latency_ms 1E+400 is too large"),
    # int() of 1e999999 took 35 s, then 'unexpected ValueError'; 1e99999999999 ran out of memory
    "huge_tokens.jsonl": (_jsonl_row(input_tokens="1e999999").encode(), "input_tokens 1E+999999 is above"),
    "huge_tokens_more.jsonl": (_jsonl_row(input_tokens="1e99999999999").encode(), "is above the maximum"),
    # stored as inf: `logs --json` and `export --json` then printed Infinity, which is not JSON
    "infinite_latency.jsonl": (_jsonl_row(latency_ms="1e400").encode(), "latency_ms 1E+400 is too large"),
    "infinite_score.csv": (b"timestamp,user,model,cost,quality_score\n2026-05-02T10:00:00Z,bob,m,1,1e400\n",
                           "quality_score 1E+400 is too large"),
    "int_digits.jsonl": (_jsonl_row(input_tokens="9" * 5000).encode(), "a number of 5000 digits"),
    "leap_second.csv": (_csv("2016-12-31T23:59:60Z,bob,m,1"), "not an ISO 8601"),
    "hour_24.csv": (_csv("2026-05-01T24:00:00Z,bob,m,1"), "not an ISO 8601"),
    "offset_25h.csv": (_csv("2026-05-01T10:00:00+25:00,bob,m,1"), "not an ISO 8601"),
    "feb_30.csv": (_csv("2026-02-30T10:00:00Z,bob,m,1"), "not an ISO 8601"),
    "year_9999.csv": (_csv("9999-12-31T23:59:59-01:00,bob,m,1"), "out of range"),
    "dict.json": (b'{"timestamp": "2026-05-02T10:00:00Z", "user": "b", "model": "m", "cost": 1}',
                  "expected a JSON array"),
    "deep.json": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "deep_row.jsonl": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"\n", "nested too deeply"),
    "nan_literal.json": (("[" + _jsonl_row(cost="NaN") + "]").encode(), "not a finite number"),
    "partial_last_line.jsonl": ((_jsonl_row() + "\n" + '{"timestamp": "2026-05-0').encode(),
                                ":2: not valid JSON"),
    "gzip_named.csv": (gzip.compress(_csv(ROW.strip())), "a gzip-compressed file"),
    "garbage.csv": (bytes(range(255, -1, -1)) * 40, "not UTF-8 text"),
    "empty.csv": (b"", "the file is empty"),
    "empty.jsonl": (b"", "no rows to import"),
    "header_only.csv": (HEADER.encode(), "no rows to import"),
}


@pytest.fixture
def ledger() -> Iterator[Path]:
    with seeded_ledger() as db:
        yield db


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_hostile_file_is_one_line_and_imports_nothing(ledger: Path, name: str) -> None:
    data, says = REFUSED[name]
    path = ledger.with_name(name)
    path.write_bytes(data)
    before = fingerprint(ledger)
    line = run("--db", str(ledger), "import", str(path)).one_error_line()
    assert says in line and line.startswith(f"error: {path}"), line
    assert len(line) < 2_000, line[:200]
    assert fingerprint(ledger) == before


@pytest.mark.parametrize(("name", "data", "user"), [
    ("bom.csv", b"\xef\xbb\xbf" + _csv(ROW.strip()), "bob"),
    ("crlf.csv", _csv(ROW.strip()).replace(b"\n", b"\r\n"), "bob"),
    ("lone_cr.csv", _csv(ROW.strip()).replace(b"\n", b"\r"), "bob"),
    ("offsets.csv", _csv("2026-05-02T10:00:00+14:00,ann14,m,1", "2026-05-02T10:00:00-12:00,ann12,m,1"),
     "ann12"),
    ("minus_zero_dollars.csv", _csv("2026-05-02T10:00:00Z,bob,m,-$0", "2026-05-02T11:00:00Z,bob,m,$5"),
     "bob"),
])
def test_files_other_tools_write_are_imported(ledger: Path, name: str, data: bytes, user: str) -> None:
    path = ledger.with_name(name)
    path.write_bytes(data)
    result = run("--db", str(ledger), "import", str(path))
    assert result.code == 0, result.stderr
    assert user in {r["user"] for r in rows(ledger, "requests")}


def test_a_fifo_written_once_is_read_once(ledger: Path) -> None:
    """Both passes opened the path: the second blocked until another writer came (for ever)."""
    fifo = ledger.with_name("history.csv")
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(_csv(ROW.strip())), daemon=True)
    writer.start()
    unblock = threading.Timer(20, lambda: os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)))
    unblock.start()  # with the bug: the second pass gets EOF after 20 s instead of hanging
    try:
        result = run("--db", str(ledger), "import", str(fifo))
    finally:
        unblock.cancel()
    assert result.code == 0, result.stderr
    assert "imported 1 request" in result.stderr
    assert [r["cost_nusd"] for r in rows(ledger, "requests") if r["user"] == "bob"] == [250_000_000]


def test_a_pipe_on_stdin_is_imported(tmp_path: Path) -> None:
    """`cat h.csv | cascade import /dev/stdin`, `cascade import <(gunzip -c h.csv.gz)`:
    'the file is empty' (the check had read the pipe), in a real process."""
    cli = CliRunner(tmp_path, None, tmp_path / "l.db")
    result = cli("import", "/dev/stdin", input=_csv(ROW.strip()).decode())
    assert result.code == 0, result.stderr
    assert [r["user"] for r in rows(cli.db, "requests")] == ["bob"]


def test_a_file_that_changes_while_imported_imports_nothing(ledger: Path) -> None:
    """A row appended once the import has the file open (a log still being written): it was
    imported unchecked, or the second pass failed on a line the check had passed."""
    path = ledger.with_name("growing.csv")
    path.write_bytes(_csv(*(f"2026-05-02T10:{i // 60 % 60:02d}:{i % 60:02d}Z,u{i},m,0.01"
                            for i in range(10_000))))
    opened = threading.Event()

    def append_once_open() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for fd in os.listdir("/proc/self/fd"):
                try:
                    if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                        with path.open("a") as fh:
                            fh.write("2026-05-03T10:00:00Z,late,m,7\n")
                        opened.set()
                        return
                except OSError:
                    continue
            time.sleep(0.001)

    before = fingerprint(ledger)
    watcher = threading.Thread(target=append_once_open, daemon=True)
    watcher.start()
    result = run("--db", str(ledger), "import", str(path))
    watcher.join(5)
    assert opened.is_set()
    line = result.one_error_line()
    assert "the file changed while it was imported, so nothing was imported" in line, line
    assert fingerprint(ledger) == before
    # the complete file imports
    assert run("--db", str(ledger), "import", str(path)).code == 0
    assert len(rows(ledger, "requests")) == 1 + 10_001
