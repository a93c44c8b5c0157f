"""Batch rows: any line parses to a row or a row error (never an exception), a valid row
keeps its fields, and a file of bad rows gets one error line per row in the output,
calls nothing and records nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cascadeflow_cli.engine.batch import BadRow, BatchRow, parse_row
from cascadeflow_cli.ledger.db import open_ledger
from tests.properties.conftest import BadInputTally
from tests.properties.harness import fingerprint, run, scratch

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
texts = st.text(min_size=1, max_size=30).filter(str.strip)
valid_rows = st.fixed_dictionaries(
    {"id": st.one_of(st.integers(), texts), "query": texts},
    optional={"user": texts, "domain": st.sampled_from(["code", "math", "general"])},
)


@given(line=st.text(max_size=80), number=st.integers(1, 10**6))
def test_any_line_is_a_row_or_a_row_error(line: str, number: int) -> None:
    row = parse_row(line, number)
    assert isinstance(row, BatchRow | BadRow)
    if isinstance(row, BadRow):
        assert row.error.startswith(f"line {number}: ")


@given(
    obj=st.dictionaries(st.sampled_from(["id", "query", "user", "domain", "x"]), json_values, max_size=5),
    number=st.integers(1, 1000),
)
def test_any_json_object_is_a_row_or_a_row_error(obj: dict[str, Any], number: int) -> None:
    row = parse_row(json.dumps(obj), number)
    if isinstance(row, BatchRow):
        assert isinstance(row.query, str) and row.query.strip()
        assert row.id == obj.get("id", number)
    else:
        assert row.error.startswith(f"line {number}: ")


@given(obj=valid_rows, number=st.integers(1, 1000), ascii_only=st.booleans())
def test_a_valid_row_keeps_its_fields(obj: dict[str, Any], number: int, ascii_only: bool) -> None:
    assert obj["query"].encode("utf-8", "surrogatepass")
    row = parse_row(json.dumps(obj, ensure_ascii=ascii_only), number)
    if any(isinstance(v, str) and not _is_text(v) for v in obj.values()):
        assert isinstance(row, BadRow) and "not valid UTF-8 text" in row.error
        return
    assert isinstance(row, BatchRow), row
    assert (row.id, row.query, row.user, row.domain) == (
        obj["id"],
        obj["query"],
        obj.get("user"),
        obj.get("domain"),
    )


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


bad_lines = st.one_of(
    st.text(max_size=40).filter(lambda s: s.strip() and not s.lstrip().startswith("{")),  # not an object
    st.builds(json.dumps, st.lists(json_values, max_size=3)),
    st.builds(
        lambda q: json.dumps({"id": "x", "query": q}),
        st.one_of(st.text(" \t", max_size=3), st.integers(), st.none(), st.just("caf\udce9")),
    ),
    st.builds(
        lambda i: json.dumps({"id": i, "query": "hi"}),
        st.one_of(st.booleans(), st.floats(), st.just(""), st.lists(st.integers(), max_size=2)),
    ),
    st.builds(
        lambda u: json.dumps({"query": "hi", "user": u}),
        st.one_of(st.just(""), st.integers(), st.just("\ud800")),
    ),
    st.just('{"query": "unterminated'),
)


@pytest.fixture(scope="module")
def setup() -> Iterator[tuple[Path, Path]]:
    """A config whose models point at a closed port: a bad row must never reach one."""
    with scratch() as tmp:
        config = Path(tmp) / "cascadeflow.toml"
        config.write_text(
            '[[models]]\nname = "m"\nmodel = "openai/gpt-4o-mini"\n'
            'api_base = "http://127.0.0.1:9/v1"\ninput_cost_per_million = 1\n'
            'output_cost_per_million = 1\n[cascade]\nmodels = ["m"]\n',
            encoding="utf-8",
        )
        db = Path(tmp) / "l.db"
        open_ledger(db).close()  # an empty ledger (`logs` on no ledger makes none: hostile-11)
        assert run("--config", str(config), "--db", str(db), "logs").code == 0
        yield config, db


@pytest.mark.slow
@given(lines=st.lists(bad_lines, min_size=1, max_size=6))
def test_a_file_of_bad_rows_gets_one_error_line_each(
    setup: tuple[Path, Path], lines: list[str], tally: BadInputTally
) -> None:
    config, db = setup
    with scratch() as tmp:
        source = Path(tmp) / "in.jsonl"
        source.write_bytes(
            "".join(line.replace("\n", " ") + "\n" for line in lines).encode("utf-8", "surrogatepass")
        )
        out = Path(tmp) / "out.jsonl"
        before = fingerprint(db)
        result = run("--config", str(config), "--db", str(db), "batch", str(source), "--output", str(out))
        for _ in lines:
            tally.record("batch rows", result.stderr)
        assert "unexpected" not in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert result.code in (0, 5), result.stderr  # 5 once batch reports rows that failed (issue 11)
        written = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
        assert len(written) == len(lines) and all("error" in w for w in written)
        assert sorted(w["error"].split(":")[0] for w in written) == sorted(
            f"line {i}" for i in range(1, len(lines) + 1)
        )
        after = fingerprint(db)[1]  # a run is noted in `batches`; no request, no call, no reservation
        assert {t: after[t] for t in ("requests", "calls", "reservations")} == {
            t: before[1][t] for t in ("requests", "calls", "reservations")
        }
