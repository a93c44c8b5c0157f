"""The project's own domain training rows (bench/data): well-formed, labelled, and ours."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cascadeflow_cli.routing.domain import DOMAINS

DATA = Path(__file__).resolve().parents[2] / "bench" / "data"


@pytest.mark.parametrize("name", ["domain_written.jsonl", "domain_chat.jsonl"])
def test_rows_are_labelled_unique_and_written_for_the_project(name: str) -> None:
    text = (DATA / name).read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert rows
    assert len({r["id"] for r in rows}) == len(rows)
    queries = [" ".join(r["query"].lower().split()) for r in rows]
    assert len(set(queries)) == len(queries)  # no row twice (it would count double in the fit)
    for r in rows:
        assert r["domain"] in DOMAINS, r["id"]
        assert r["query"].strip(), r["id"]
        assert "cascadeflow-cli" in r["source"], r["id"]  # written for the project: its licence
        r["query"].encode("utf-8")  # no lone surrogates
    assert {r["domain"] for r in rows} == set(DOMAINS)
