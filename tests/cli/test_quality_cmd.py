"""`cascade quality check` end to end: the real command in an empty directory (no config,
no ledger)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cascadeflow_cli.quality.validator import CHECK_NAMES
from tests.cli.support import DETAILED, LONG_ANSWER, is_number
from tests.conftest import CliRunner, assert_one_error_line

ROW_KEYS = {"score", "passed", "threshold", "reasons", "checks", "probability", "calibrated"}
EXPLAIN = "Explain why the sky is blue."
THIN = "Rayleigh scattering makes short blue wavelengths scatter across the sky."  # 10 words
HOW_TO = "How do I reverse a list in Python?"
NO_PERIOD = "You can call the reverse method on the list or use slicing with a negative step"


@pytest.fixture
def runner(tmp_path: Path) -> CliRunner:
    """No config file anywhere (HOME is empty) and no ledger."""
    return CliRunner(tmp_path, None, tmp_path / "ledger.db")


def check(runner: CliRunner, *args: str) -> Any:
    run = runner("quality", "check", *args, "--json")
    assert run.code == 0, run.stderr
    assert run.stderr == ""
    assert len(run.stdout.splitlines()) == 1, run.stdout
    return run.json()


def assert_row(row: Any) -> None:
    assert isinstance(row, dict) and set(row) - {"id"} == ROW_KEYS
    assert is_number(row["score"]) and 0.0 <= row["score"] <= 1.0
    assert isinstance(row["passed"], bool) and row["passed"] == (row["score"] >= row["threshold"])
    assert isinstance(row["reasons"], list) and all(isinstance(r, str) for r in row["reasons"])
    assert set(row["checks"]) == set(CHECK_NAMES)
    assert all(is_number(v) and 0.0 <= v <= 1.0 for v in row["checks"].values())


def write(tmp_path: Path, lines: list[str], name: str = "rows.jsonl", bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + "\n".join(lines).encode() + b"\n")
    return path


def test_a_good_answer_passes_without_config_or_ledger(runner: CliRunner, tmp_path: Path) -> None:
    row = check(runner, "--query", DETAILED, "--response", LONG_ANSWER)
    assert_row(row)
    assert "id" not in row
    # no deduction; the continuous shape term keeps a clean answer just under 1.0
    assert 0.95 <= row["score"] < 1.0 and row["passed"] is True and row["threshold"] == 0.7
    assert row["reasons"] == [] and row["calibrated"] is False and row["probability"] is None
    assert list(tmp_path.rglob("*")) == []  # no ledger, no config, nothing in HOME


def test_a_cut_off_answer_fails_with_a_reason(runner: CliRunner) -> None:
    row = check(runner, "--query", DETAILED, "--response", LONG_ANSWER, "--finish-reason", "length")
    assert_row(row)
    assert row["passed"] is False and row["score"] < row["threshold"]
    assert row["checks"]["truncated"] < 1.0
    assert any(r.startswith("truncated:") and "length" in r for r in row["reasons"])


def test_an_answer_ending_mid_sentence_fails(runner: CliRunner) -> None:
    row = check(runner, "--query", DETAILED, "--response", LONG_ANSWER.removesuffix(" and starch.")
                + " and the")
    assert row["passed"] is False
    assert [r for r in row["reasons"] if r.startswith("truncated:")], row["reasons"]


def test_an_empty_response_scores_zero(runner: CliRunner) -> None:
    row = check(runner, "--query", "What is 2+2?", "--response", "")
    assert row["score"] == 0.0 and row["passed"] is False and row["checks"]["empty"] == 0.0


def test_presets_and_the_threshold_override(runner: CliRunner) -> None:
    fast = check(runner, "--query", EXPLAIN, "--response", THIN, "--preset", "fast")
    strict = check(runner, "--query", EXPLAIN, "--response", THIN, "--preset", "strict")
    assert (fast["threshold"], strict["threshold"]) == (0.5, 0.8)
    assert fast["passed"] is True and strict["passed"] is False  # strict wants a longer answer
    assert strict["checks"]["length"] < fast["checks"]["length"]
    balanced = check(runner, "--query", EXPLAIN, "--response", THIN)
    high = check(runner, "--query", EXPLAIN, "--response", THIN, "--threshold", "0.9")
    assert balanced["threshold"] == 0.7 and balanced["passed"] is True
    assert high["threshold"] == 0.9 and high["score"] == balanced["score"] and high["passed"] is False


def test_domain_is_passed_to_the_validator(runner: CliRunner) -> None:
    prose = check(runner, "--query", HOW_TO, "--response", NO_PERIOD)
    code = check(runner, "--query", HOW_TO, "--response", NO_PERIOD, "--domain", "code")
    assert prose["checks"]["truncated"] < 1.0 and code["checks"]["truncated"] == 1.0


def test_human_verdict(runner: CliRunner) -> None:
    good = runner("quality", "check", "--query", DETAILED, "--response", LONG_ANSWER)
    assert good.code == 0, good.stderr
    assert good.stdout.splitlines()[0].startswith("PASS  score 0.9")
    assert ">= threshold 0.7 (preset balanced)" in good.stdout.splitlines()[0]
    cut = runner("quality", "check", "--query", DETAILED, "--response", LONG_ANSWER,
                 "--finish-reason", "length", "--preset", "strict")
    assert cut.code == 0, cut.stderr  # a report: failing is not an error
    lines = cut.stdout.splitlines()
    assert lines[0].startswith("FAIL  score ") and "< threshold 0.8 (preset strict)" in lines[0]
    assert any(line.strip().startswith("- truncated 0.05: finish_reason='length'") for line in lines[1:])


def test_a_file_keeps_order_and_ids(runner: CliRunner, tmp_path: Path) -> None:
    path = write(tmp_path, [
        json.dumps({"id": "b", "query": DETAILED, "response": LONG_ANSWER}),
        "",
        json.dumps({"query": DETAILED, "response": LONG_ANSWER, "finish_reason": "length"}),
        "   ",
        json.dumps({"id": 3, "query": HOW_TO, "response": NO_PERIOD, "domain": "code"}),
        json.dumps({"id": "a", "query": HOW_TO, "response": NO_PERIOD, "extra": [1]}),
    ], bom=True)
    run = runner("quality", "check", "--input", str(path), "--json")
    assert run.code == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    for row in rows:
        assert_row(row)
    assert [row.get("id") for row in rows] == ["b", None, 3, "a"]
    assert "id" not in rows[1]
    assert [row["passed"] for row in rows] == [True, False, True, False]
    assert rows[1]["checks"]["truncated"] == 0.05  # the row's finish_reason
    assert rows[2]["checks"]["truncated"] == 1.0 and rows[3]["checks"]["truncated"] < 1.0  # domain


def test_file_defaults_come_from_the_options(runner: CliRunner, tmp_path: Path) -> None:
    path = write(tmp_path, [json.dumps({"query": HOW_TO, "response": NO_PERIOD}),
                            json.dumps({"query": HOW_TO, "response": NO_PERIOD, "domain": "general"})])
    run = runner("quality", "check", "--input", str(path), "--domain", "code", "--json")
    assert run.code == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert [row["checks"]["truncated"] for row in rows] == [1.0, 0.6]  # the row's own domain wins


def test_an_unknown_domain_is_one_line_as_for_ask(runner: CliRunner, tmp_path: Path) -> None:
    """`--domain astrology` and a row's "astrology" were scored as prose, exit 0, where
    `ask --domain astrology` refuses: every command takes the same names."""
    run = runner("quality", "check", "--query", HOW_TO, "--response", NO_PERIOD, "--domain", "astrology")
    assert run.code == 1 and run.stdout == ""
    assert_one_error_line(run.stderr)
    assert "--domain: unknown domain 'astrology' (known: code, math," in run.stderr
    path = write(tmp_path, [json.dumps({"query": HOW_TO, "response": NO_PERIOD}),
                            json.dumps({"query": HOW_TO, "response": NO_PERIOD, "domain": "astrology"})])
    run = runner("quality", "check", "--input", str(path), "--json")
    assert run.code == 1 and run.stdout == ""  # checked whole before any output
    assert_one_error_line(run.stderr)
    assert f"{path}:2: unknown domain 'astrology'" in run.stderr


def test_a_custom_domain_is_a_known_domain(tmp_path: Path) -> None:
    """[domains.custom.NAME] and [domains] keys are valid names for `quality check` too."""
    config = tmp_path / "cascadeflow.toml"
    config.write_text('[domains]\nsql = ["mini"]\n[domains.custom.support]\n'
                      'examples = ["reset my password"]\n', encoding="utf-8")
    runner = CliRunner(tmp_path, config, tmp_path / "ledger.db")
    for name in ("support", "sql", "code"):
        row = check(runner, "--query", HOW_TO, "--response", NO_PERIOD, "--domain", name)
        assert_row(row)
    run = runner("quality", "check", "--query", HOW_TO, "--response", NO_PERIOD, "--domain", "sales")
    assert run.code == 1 and "unknown domain 'sales' (known: code, math, medical, legal, finance, " \
        "general, support, sql)" in run.stderr


def test_a_file_as_a_table(runner: CliRunner, tmp_path: Path) -> None:
    path = write(tmp_path, [
        json.dumps({"id": "good", "query": DETAILED, "response": LONG_ANSWER}),
        json.dumps({"id": "cut", "query": DETAILED, "response": LONG_ANSWER, "finish_reason": "length"}),
        json.dumps({"query": "What is 2+2?", "response": "4"}),
    ])
    run = runner("quality", "check", "--input", str(path), "--preset", "fast")
    assert run.code == 0, run.stderr
    body = [line.split() for line in run.stdout.splitlines() if line.strip()]
    assert body[-1][:4] == ["2", "of", "3", "passed"] and "fast," in body[-1]
    results = {cells[1]: cells[2] for cells in body[:-1] if cells[0].isdigit()}
    assert results == {"good": "PASS", "cut": "FAIL", "-": "PASS"}


BAD_LINES = [
    ("{not json", "not valid JSON"),
    ('["query", "response"]', "expected a JSON object"),
    ('{"query": "q"}', "no 'response'"),
    ('{"response": "r"}', "no 'query'"),
    ('{"query": 3, "response": "r"}', "'query' must be a string"),
    ('{"query": "q", "response": null}', "'response' must be a string"),
    ('{"query": "q", "response": "r", "id": true}', "'id' must be"),
    ('{"query": "q", "response": "r", "finish_reason": 1}', "'finish_reason' must be a string"),
    # "" and "  " were falsy downstream: scored as prose, as if the row named no domain
    ('{"query": "q", "response": "r", "domain": ""}', "'domain' is empty"),
    ('{"query": "q", "response": "r", "domain": "  "}', "'domain' is empty"),
    ('{"query": "q", "response": "r", "domain": 5}', "'domain' must be a string"),
    ('{"query": "q", "response": "r", "response": "s"}', "key 'response' appears twice"),
]


@pytest.mark.parametrize(("line", "reason"), BAD_LINES, ids=[r for _, r in BAD_LINES])
def test_a_bad_line_aborts_before_any_output(runner: CliRunner, tmp_path: Path, line: str,
                                             reason: str) -> None:
    good = json.dumps({"id": 1, "query": DETAILED, "response": LONG_ANSWER})
    path = write(tmp_path, [good, "", line, good])
    run = runner("quality", "check", "--input", str(path), "--json")
    assert run.code == 1
    assert run.stdout == ""
    assert_one_error_line(run.stderr)
    assert f"{path}:3: " in run.stderr and reason in run.stderr


def test_a_line_that_is_not_utf8(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"query": "q", "response": "r"}\n{"query": "caf\xe9", "response": "r"}\n')
    run = runner("quality", "check", "--input", str(path))
    assert run.code == 1 and run.stdout == ""
    assert_one_error_line(run.stderr)
    assert f"{path}:2: not UTF-8" in run.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["--input", "missing.jsonl"], "missing.jsonl: no such file"),
    (["--input", "."], "is a directory"),
    (["--query", "q", "--response", "r", "--input", "rows.jsonl"], "not both"),
    (["--query", "q"], "--query needs --response"),
    (["--response", "r"], "--response needs --query"),
    ([], "give --query and --response, or --input"),
    (["--query", "q", "--response", "r", "--preset", "turbo"], "unknown quality preset 'turbo'"),
    (["--query", "q", "--response", "r", "--threshold", "1.5"], "--threshold must be within [0, 1]"),
    (["--query", "q", "--response", "r", "--domain", ""], "'--domain': the domain is empty"),
    (["--input", "rows.jsonl", "--domain", "  "], "'--domain': the domain is empty"),
], ids=["missing-file", "directory", "both", "query-only", "response-only", "neither", "preset",
        "threshold", "empty-domain", "blank-domain"])
def test_usage_errors(runner: CliRunner, tmp_path: Path, args: list[str], says: str) -> None:
    write(tmp_path, [json.dumps({"query": "q", "response": "r"})])
    run = runner("quality", "check", *args, "--json")
    assert run.code == 1
    assert run.stdout == ""
    assert_one_error_line(run.stderr)
    assert says in run.stderr
