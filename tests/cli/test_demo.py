"""`cascade demo`: a fresh machine with no config and no API key."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

import cascadeflow_cli
from tests.cli.support import ASK_KEYS, rows
from tests.conftest import CliRunner

DEMO_FILE = Path(cascadeflow_cli.__file__).parent / "data" / "demo_queries.jsonl"
DEMO_ROWS = [line for line in DEMO_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
ROW = re.compile(r"^\s*\d+\s+\S+\s+(mini|big)\s+(.+?)\s+-?\$", re.MULTILINE)
TOTALS = re.compile(r"(\d+) queries: (\d+) answered by the cheap draft, (\d+) escalated\.")
KEPT = re.compile(r"Right answers: cascade (\d+) of (\d+), gpt-4o alone (\d+); (\d+)% of its quality kept")


@pytest.fixture
def demo_cli(tmp_path: Path) -> CliRunner:
    cwd = tmp_path / "fresh"  # no ./cascadeflow.toml here
    cwd.mkdir()
    runner = CliRunner(cwd, None, tmp_path / "unused.db")
    env = runner.env()
    assert "CASCADE_CONFIG" not in env and "OPENAI_API_KEY" not in env
    return runner


def test_demo_runs_the_whole_cascade_without_config_or_key(demo_cli: CliRunner,
                                                           tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    run = demo_cli("--db", str(db), "demo", COLUMNS="160")
    assert run.code == 0, run.stderr
    totals = TOTALS.search(run.stdout)
    assert totals, run.stdout
    total, accepted, escalated = map(int, totals.groups())
    assert total == len(DEMO_ROWS) and accepted + escalated == total
    assert accepted > 0 and escalated > 0
    assert "gpt-4o alone $" in run.stdout and "saved $" in run.stdout
    answered_by = ROW.findall(run.stdout[:totals.start()])  # (model, why) per table row
    assert len(answered_by) == total
    assert sum(m == "mini" and w.startswith("draft ok") for m, w in answered_by) == accepted
    assert sum(m == "big" and not w.startswith("draft ok") for m, w in answered_by) == escalated
    assert "recorded" in run.stderr

    requests = rows(db, "requests")
    assert len(requests) == len(DEMO_ROWS)
    assert {r["user"] for r in requests} == {"demo"} and {r["status"] for r in requests} == {"ok"}
    assert sum(bool(r["draft_accepted"]) for r in requests) == accepted
    assert sum(bool(r["escalated"]) for r in requests) == escalated
    assert not demo_cli.db.exists()  # --db is honoured


def test_demo_json_limit_and_a_fresh_ledger_each_run(demo_cli: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    for _ in range(2):
        run = demo_cli("--db", str(db), "demo", "--json", "--limit", "5")
        assert run.code == 0, run.stderr
    results = run.json()
    assert isinstance(results, list) and len(results) == 5
    assert [r["id"] for r in results] == [json.loads(line)["id"] for line in DEMO_ROWS[:5]]
    for result in results:
        assert set(result) == ASK_KEYS | {"id", "correct"}  # issue 9: the answer's label
        assert isinstance(result["correct"], bool)
        assert result["user"] == "demo"
    assert sorted(r["id"] for r in rows(db, "requests")) == sorted(r["request_id"] for r in results)


def test_demo_accepts_db_after_the_command_name(demo_cli: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    run = demo_cli("demo", "--db", str(db), "--limit", "2")
    assert run.code == 0, run.stderr
    assert len(rows(db, "requests")) == 2


def test_the_command_the_demo_suggests_works(demo_cli: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    run = demo_cli("--db", str(db), "demo", "--limit", "2")
    assert run.code == 0, run.stderr
    hint = re.search(r"try: (cascade [^)]*?)\s*\)", run.stderr)
    assert hint, run.stderr
    follow = demo_cli(*shlex.split(hint.group(1))[1:])
    assert follow.code == 0, f"`{hint.group(1)}` failed: {follow.stderr}"
    assert " demo " in follow.stdout  # the demo's requests, not the default ledger's


def test_demo_labels_every_answer_and_shows_the_quality_kept(demo_cli: CliRunner, tmp_path: Path) -> None:
    """Issue 9: a wrong draft the check accepted is marked WRONG next to its score, and
    the totals give the right answers of the cascade against the strong model's alone."""
    db = tmp_path / "demo.db"
    table = demo_cli("--db", str(db), "demo", COLUMNS="200")
    data = demo_cli("--db", str(db), "demo", "--json")
    assert table.code == 0 and data.code == 0, table.stderr + data.stderr
    results = data.json()
    labels = {json.loads(line)["id"]: json.loads(line)["correct"] for line in DEMO_ROWS}
    for r in results:
        model_id = "gpt-4o-mini" if r["model"] == "mini" else "gpt-4o"
        assert r["correct"] is labels[r["id"]][model_id]
    right = sum(r["correct"] for r in results)
    strong = sum(labels[r["id"]]["gpt-4o"] for r in results)
    kept = KEPT.search(" ".join(table.stdout.split()))
    assert kept, table.stdout
    assert tuple(map(int, kept.groups()[:3])) == (right, len(results), strong)
    assert int(kept.group(4)) == round(100 * right / strong)
    lines = [line for line in table.stdout.splitlines() if re.match(r"^\s*\d+\s+\S+\s+(mini|big)\s", line)]
    assert len(lines) == len(results)
    for line, r in zip(lines, results, strict=True):
        assert ("WRONG" in line) == (not r["correct"]) and ("right" in line) == r["correct"]
    # the wrong drafts the check let through are the ones marked, not hidden behind a score
    wrong_accepted = [r for r in results if r["draft_accepted"] and not r["correct"]]
    assert all("WRONG" in lines[results.index(r)] for r in wrong_accepted)
