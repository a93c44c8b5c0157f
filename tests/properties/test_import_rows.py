"""Import rows (CSV, JSON, JSONL): valid history round-trips through import and export;
one bad row anywhere gives one line naming file and line, exit 1, and the ledger is
byte-for-byte unchanged."""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cascadeflow_cli.clock import format_ts
from tests.properties.conftest import BadInputTally
from tests.properties.harness import fingerprint, run, scratch, seeded_ledger

pytestmark = pytest.mark.slow

COLUMNS = ("timestamp", "user", "model", "cost", "input_tokens", "output_tokens")

# no format characters (Cf): a user name holding one is refused (text.user_name), not imported
texts = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cf")), min_size=1, max_size=16).filter(
    str.strip
)
rows = st.fixed_dictionaries(
    {
        "timestamp": st.datetimes(
            min_value=datetime(1971, 1, 1), max_value=datetime(9000, 1, 1), timezones=st.just(UTC)
        ),
        "user": texts,
        "model": st.from_regex(r"[a-z]{1,8}/[a-z0-9][a-z0-9.-]{0,11}", fullmatch=True),
        # amounts above a per-row maximum are money-path's (issue 11 item 5): kept modest here
        "cost": st.decimals(min_value=0, max_value=1000, places=9),
        "input_tokens": st.integers(0, 10**9),
        "output_tokens": st.integers(0, 10**9),
    }
)
formats = st.sampled_from(["csv", "json", "jsonl"])


def _cell(row: dict[str, Any], name: str) -> str:
    value = row[name]
    return value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else str(value)


def write_history(path: Path, fmt: str, records: list[dict[str, Any]]) -> list[int]:
    """Write ``records`` (values already text) in ``fmt``; return each record's line number."""
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        lines, line = [], 2
        for r in records:
            writer.writerow([r.get(c, "") for c in COLUMNS])
            lines.append(line)
            line += 1 + sum(str(r.get(c, "")).count("\n") for c in COLUMNS)
        path.write_bytes(out.getvalue().encode("utf-8", "surrogatepass"))  # a lone surrogate: bad bytes
        return lines
    objects = [json.dumps(r, ensure_ascii=False) for r in records]
    if fmt == "jsonl":
        path.write_bytes("".join(o + "\n" for o in objects).encode("utf-8", "surrogatepass"))
        return list(range(1, len(records) + 1))
    text = "[\n" + ",\n".join(objects) + "\n]\n"  # our export's layout
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return list(range(2, len(records) + 2))


def _as_text(row: dict[str, Any]) -> dict[str, Any]:
    return {c: _cell(row, c) for c in COLUMNS}


@given(history=st.lists(rows, min_size=1, max_size=8), fmt=formats)
@example(  # U+F900 is kept as its NFC form U+8C48 (hypothesis found it, CI 2026-12-04)
    history=[{"timestamp": datetime(2026, 1, 2, tzinfo=UTC), "user": "\uf900", "model": "a/b",
              "cost": Decimal("0.5"), "input_tokens": 1, "output_tokens": 2}],
    fmt="csv",
)
def test_valid_history_round_trips_through_import_and_export(history: list[dict[str, Any]], fmt: str) -> None:
    with scratch() as tmp:
        root = Path(tmp)
        source = root / f"h.{fmt}"
        write_history(source, fmt, [_as_text(r) for r in history])
        db = root / "l.db"
        result = run("--db", str(db), "import", str(source))
        assert result.code == 0, result.stderr
        exported = run("--db", str(db), "export", "--json")
        assert exported.code == 0, exported.stderr
        got = sorted(
            (
                r["timestamp"],
                r["user"],
                r["model"],
                Decimal(str(r["cost"])),
                r["input_tokens"],
                r["output_tokens"],
            )
            for r in json.loads(exported.stdout)
        )
        want = sorted(
            (
                format_ts(r["timestamp"]),
                unicodedata.normalize("NFC", r["user"].strip()),  # names are kept in NFC (text.user_name)
                r["model"],
                r["cost"],
                r["input_tokens"],
                r["output_tokens"],
            )
            for r in history
        )
        assert [g[:3] + g[4:] for g in got] == [w[:3] + w[4:] for w in want]
        # costs are exact in the ledger (nano-dollars); JSON shows them as floats
        assert all(abs(g[3] - w[3]) <= Decimal("1e-9") * max(1, w[3]) for g, w in zip(got, want, strict=True))
        again = run("--db", str(db), "import", str(source))  # idempotent: nothing new
        assert again.code == 0 and "imported 0 requests" in again.stderr


bad_values = {
    "timestamp": st.one_of(
        st.sampled_from(
            [
                "",
                "  ",
                "yesterday",
                "2026-13-01",
                "2026-02-30T10:00:00",
                "0001-01-01T00:00:00+01:00",
                "1969-12-31T23:00:00Z",
                "9999-12-31T23:30:00-01:00",
                "2026/01/01",
                "\udce9",
            ]
        ),
        st.text(max_size=12).filter(lambda s: not any(c.isdigit() for c in s)),
    ),
    "user": st.one_of(st.text(" \t", max_size=3), st.just("\ud800")),
    "model": st.one_of(st.text(" \t", max_size=3), st.just("a\udce9")),
    "cost": st.one_of(
        st.sampled_from(["-1", "-0.01", "abc", "nan", "inf", "-inf", "1_000", "$-5", "1,5", "0x10", "", " "]),
        st.decimals(max_value=Decimal("-1e-9"), allow_nan=False, allow_infinity=False).map(str),
        st.text(max_size=8).filter(lambda s: s.strip() and not any(c.isdigit() for c in s)),
    ),
    "input_tokens": st.one_of(
        st.integers(max_value=-1).map(str), st.sampled_from(["1.5", "ten", "1e3x", "-0.5"])
    ),
    "output_tokens": st.one_of(st.integers(max_value=-1).map(str), st.sampled_from(["2.25", "x", "--1"])),
}
bad_fields = st.sampled_from(list(bad_values)).flatmap(
    lambda name: st.tuples(st.just(name), bad_values[name])
)


@pytest.fixture(scope="module")
def ledger() -> Iterator[Path]:
    with seeded_ledger() as db:
        yield db


@given(history=st.lists(rows, min_size=1, max_size=6), fmt=formats, data=st.data())
def test_one_bad_row_names_its_line_and_imports_nothing(
    ledger: Path, history: list[dict[str, Any]], fmt: str, data: st.DataObject, tally: BadInputTally
) -> None:
    records = [_as_text(r) for r in history]
    index = data.draw(st.integers(0, len(records) - 1), label="bad row")
    name, value = data.draw(bad_fields, label="bad field")
    if fmt != "csv" and value == "" and name in ("cost", "timestamp", "user", "model"):
        records[index].pop(name)  # JSON: a missing field rather than an empty one
    else:
        records[index][name] = value
    with scratch() as tmp:
        source = Path(tmp) / f"h.{fmt}"
        lines = write_history(source, fmt, records)
        before = fingerprint(ledger)
        result = run("--db", str(ledger), "import", str(source))
        tally.record(f"import rows ({fmt})", result.stderr)
        line = result.one_error_line()
        assert f"{source}:{lines[index]}:" in line, (line, lines[index])
        assert fingerprint(ledger) == before


@given(noise=st.binary(max_size=300), fmt=formats)
def test_arbitrary_bytes_never_crash_the_importer(
    ledger: Path, noise: bytes, fmt: str, tally: BadInputTally
) -> None:
    with scratch() as tmp:
        source = Path(tmp) / f"h.{fmt}"
        source.write_bytes(noise)
        before = fingerprint(ledger)
        result = run("--db", str(ledger), "import", str(source))
        if result.code != 0:
            tally.record(f"import bytes ({fmt})", result.stderr)
            result.one_error_line()
            assert fingerprint(ledger) == before
