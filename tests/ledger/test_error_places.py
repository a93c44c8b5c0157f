"""Errors name the right place: the line a bad byte is on, the row that lacks an id
(issue 11, item 9)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from cascadeflow_cli.engine.batch import BatchRow, duplicate_message, parse_row
from cascadeflow_cli.ledger.importer import ImportRowError, validate_file
from cascadeflow_cli.text import LineDecodeError, Utf8Lines

GOOD_ROW = "2026-01-01T10:00:00Z,bob,gpt-4o,0.1\n"


@pytest.mark.parametrize("bad_line", [2, 3, 400])
def test_a_bad_byte_in_a_csv_is_reported_on_its_own_line(tmp_path: Path, bad_line: int) -> None:
    lines = ["timestamp,user,model,cost\n"] + [GOOD_ROW] * 500
    data = "".join(lines).encode()
    parts = data.split(b"\n")
    parts[bad_line - 1] = parts[bad_line - 1].replace(b"bob", b"b\xe9b")
    path = tmp_path / "h.csv"
    path.write_bytes(b"\n".join(parts))
    with pytest.raises(ImportRowError, match=rf"h\.csv:{bad_line}: not UTF-8 text \(byte 0xe9\)$"):
        validate_file(path)


@pytest.mark.parametrize(
    ("suffix", "layout"),
    [
        (".jsonl", '{{"timestamp": "2026-01-01", "user": "{u}", "model": "m", "cost": 1}}\n'),
        (".json", '{{"timestamp": "2026-01-01", "user": "{u}", "model": "m", "cost": 1}},\n'),
    ],
)
def test_a_bad_byte_in_json_is_reported_on_its_own_line(tmp_path: Path, suffix: str, layout: str) -> None:
    body = "".join(layout.format(u="bob") for _ in range(300)).encode()
    rows = body.splitlines(keepends=True)
    rows[199] = rows[199].replace(b"bob", b"b\xe9b")
    if suffix == ".json":  # our export's layout: one object a line inside [ ]
        rows = [b"[\n", *rows[:-1], rows[-1].replace(b"},", b"}"), b"]\n"]
    path = tmp_path / f"h{suffix}"
    path.write_bytes(b"".join(rows))
    line = 200 if suffix == ".jsonl" else 201
    with pytest.raises(ImportRowError, match=rf"h\{suffix}:{line}: not UTF-8 text"):
        validate_file(path)


def test_lines_split_like_a_text_file_with_universal_newlines() -> None:
    lines = Utf8Lines(io.BytesIO(b"\xef\xbb\xbfa,b\r\nc\rd\ne"))
    assert list(lines) == ["a,b\r\n", "c\r", "d\n", "e"] and lines.number == 4
    with pytest.raises(LineDecodeError) as caught:
        list(Utf8Lines(io.BytesIO(b"a\nb\rc\xff\n")))
    assert caught.value.line == 3


def test_a_row_without_an_id_is_not_called_a_duplicate_of_an_id() -> None:
    explicit = parse_row('{"id": 2, "query": "a"}', 1)
    implicit = parse_row('{"query": "b"}', 2)
    assert isinstance(explicit, BatchRow) and isinstance(implicit, BatchRow)
    assert explicit.key == implicit.key  # same ledger key: still refused, but said right
    message = duplicate_message(implicit, 1, True)
    assert message.startswith("line 2: no 'id', and its line number 2 is already the id of line 1")
    later = parse_row('{"id": 1, "query": "c"}', 5)
    assert "is also the line number of line 1, which has no 'id'" in duplicate_message(later, 1, False)
    assert duplicate_message(later, 3, True) == "line 5: duplicate id (first on line 3)"
