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


def test_the_shipped_head_votes_with_the_chat_files_general_rows_and_stays_small() -> None:
    import numpy as np

    head = Path(__file__).resolve().parents[2] / "cascadeflow_cli" / "data" / "domain_head.npz"
    rows = [json.loads(line) for line in (DATA / "domain_chat.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    general = sum(r["domain"] == "general" for r in rows)
    with np.load(head, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        labels = data["example_labels"]
        assert meta["extra"] == "domain_chat.jsonl:general:0.15"  # bench/train_domain_head.py CHAT_*
        assert len(data["examples"]) == len(labels) == meta["rows"]
    # the dev files' and written rows' general examples plus every general chat row (none left out
    # in the final fit)
    assert int(np.sum(labels == DOMAINS.index("general"))) >= general + 200 + 113 + 12
    assert head.stat().st_size < 600_000  # a few hundred KB ships with the package (test_head.py)
