"""`cascade calibrate` and the calibrated quality check, end to end: the real command in a
subprocess, the loopback replay server, a real ledger file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cascadeflow_cli.quality import sandbox
from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.conftest import GOOD_ANSWER, CliRunner, assert_one_error_line, config_text, no_user_namespaces

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "calibration_sample.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]
REPORT_KEYS = {
    "path",
    "rows",
    "auroc",
    "threshold",
    "thresholds_by_domain",
    "expected_quality",
    "expected_savings",
    "reliability",
}


def calibrated_config(
    tmp_path: Path, server: ReplayServer, calibration: str = "calibration.json", extra: str = ""
) -> Path:
    path = tmp_path / "cascadeflow.toml"
    path.write_text(
        config_text(server.base_url) + f'\n[quality]\ncalibration = "{calibration}"\n' + extra,
        encoding="utf-8",
    )
    return path


def test_calibrate_writes_next_to_the_config_and_reports(cli: CliRunner, tmp_path: Path) -> None:
    run = cli("calibrate", str(FIXTURE), "--prices", "0.6,0.6,10,30", "--json")
    assert run.code == 0, run.stderr
    data = run.json()
    assert isinstance(data, dict) and set(data) == REPORT_KEYS
    assert data["path"] == str(tmp_path / "calibration.json") and Path(data["path"]).is_file()
    assert data["rows"] == len(ROWS) and 0.5 < data["auroc"] <= 1.0
    assert 0.0 <= data["threshold"] <= 1.0 and data["expected_quality"] >= 0.95
    assert 0.0 < data["expected_savings"] < 1.0
    assert sum(b["n"] for b in data["reliability"]) == len(ROWS)
    assert all(set(b) == {"bin", "predicted", "observed", "n"} for b in data["reliability"])

    human = cli("calibrate", str(FIXTURE), "--output", str(tmp_path / "other.json"))
    assert human.code == 0, human.stderr
    assert "AUROC" in human.stdout and "n/a (give --prices" not in human.stdout  # configured prices
    assert (tmp_path / "other.json").is_file()


def test_calibrate_without_config_writes_here(tmp_path: Path) -> None:
    run = CliRunner(tmp_path, None, tmp_path / "ledger.db")("calibrate", str(FIXTURE), "--json")
    assert run.code == 0, run.stderr
    assert (tmp_path / "calibration.json").is_file()
    assert run.json()["path"] == str(tmp_path / "calibration.json")
    assert run.json()["expected_savings"] is not None  # the default chain's list prices


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"query": "q", "response": "r", "correct": true}', "{not json"], "rows.jsonl:2:"),
        (
            ['{"query": "q", "response": "r", "correct": "yes"}'],
            "rows.jsonl:1: 'correct' must be true or false",
        ),
        (['{"query": "q", "response": "r", "correct": 1}'], "rows.jsonl:1: 'correct' must be true or false"),
        (['{"query": "q", "response": "r"}'], "rows.jsonl:1: 'correct' must be true or false, got missing"),
        (['{"query": "q", "response": "r", "correct": true, "verifier_correct": 0}'], "'verifier_correct'"),
        (['{"id": 1, "query": "q", "response": "r", "correct": true}'] * 2, "rows.jsonl:2: duplicate id 1"),
        ([json.dumps(r) for r in ROWS[:12]], "only 12 labelled rows"),
        ([json.dumps({**r, "correct": False}) for r in ROWS], "0 good and 100 bad"),
        # was fitted, and a threshold kept for a domain no request can carry
        ([json.dumps({**r, "domain": "astrology"} if i == 5 else r) for i, r in enumerate(ROWS)],
         "rows.jsonl:6: unknown domain 'astrology' (known: code, math, medical, legal, finance, general)"),
    ],
)
def test_bad_calibration_data_is_one_line(
    cli: CliRunner, tmp_path: Path, lines: list[str], message: str
) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = cli("calibrate", str(path))
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert message in run.stderr
    assert not (tmp_path / "calibration.json").exists()


@pytest.mark.parametrize(
    "args",
    [
        ("--target-quality", "0"),
        ("--target-quality", "1.5"),
        ("--prices", "1,2,3"),
        ("--prices", "a,b,c,d"),
    ],
)
def test_bad_options_are_one_line(cli: CliRunner, args: tuple[str, ...]) -> None:
    run = cli("calibrate", str(FIXTURE), *args)
    assert run.code == 1
    assert_one_error_line(run.stderr)


def test_missing_file_and_no_file(cli: CliRunner, tmp_path: Path) -> None:
    for args in (("calibrate", str(tmp_path / "nope.jsonl")), ("calibrate",)):
        run = cli(*args)
        assert run.code == 1
        assert_one_error_line(run.stderr)


def test_quality_check_with_a_calibration(cli: CliRunner, tmp_path: Path) -> None:
    cal = tmp_path / "cal.json"
    assert cli("calibrate", str(FIXTURE), "--output", str(cal)).code == 0
    good, bad = ROWS[0]["query"], "The boxes hold some pens, and we add the loose ones too"
    passed = cli(
        "quality",
        "check",
        "--query",
        good,
        "--response",
        ROWS[0]["response"],
        "--calibration",
        str(cal),
        "--json",
    )
    failed = cli("quality", "check", "--query", good, "--response", bad, "--calibration", str(cal), "--json")
    for run in (passed, failed):
        assert run.code == 0, run.stderr
        row = run.json()
        assert row["calibrated"] is True and row["probability"] == row["score"]
        assert row["passed"] == (row["score"] >= row["threshold"])
    assert passed.json()["score"] > failed.json()["score"]
    assert failed.json()["passed"] is False
    rules = cli("quality", "check", "--query", good, "--response", bad, "--json")
    assert rules.json()["calibrated"] is False and rules.json()["probability"] is None


@pytest.mark.parametrize("content", ['{"format": "x"}', "[1, 2]", "{broken", ""])
def test_a_broken_calibration_stops_ask_before_any_call(
    server: ReplayServer, tmp_path: Path, content: str
) -> None:
    config = calibrated_config(tmp_path, server)
    (tmp_path / "calibration.json").write_text(content, encoding="utf-8")
    run = CliRunner(tmp_path, config, tmp_path / "ledger.db")
    for args in (("ask", "What is 2 + 2?"), ("quality", "check", "--query", "q", "--response", "r")):
        result = run(*args)
        assert result.code == 1
        assert_one_error_line(result.stderr)
        assert "calibration.json" in result.stderr
    assert server.requests == []  # nothing called


def test_missing_calibration_named_in_the_config(server: ReplayServer, tmp_path: Path) -> None:
    config = calibrated_config(tmp_path, server, "nowhere/cal.json")
    result = CliRunner(tmp_path, config, tmp_path / "ledger.db")("ask", "What is 2 + 2?")
    assert result.code == 1 and "not found" in result.stderr
    assert_one_error_line(result.stderr)
    assert server.requests == []


@pytest.mark.parametrize(
    "routing", ["", '\n[domains]\nmath = ["mini", "big"]\ncode = ["mini", "big"]\n'], ids=["plain", "routed"]
)
def test_live_cascade_and_quality_check_decide_alike(
    server: ReplayServer, tmp_path: Path, routing: str
) -> None:
    """The same replayed draft gets the same score and decision from `ask` (the live
    cascade) and from `quality check` with the same calibration, with and without
    domain routing."""
    shutil.copy(FIXTURE, tmp_path / "rows.jsonl")
    config = calibrated_config(tmp_path, server, extra=routing)
    run = CliRunner(tmp_path, config, tmp_path / "ledger.db")
    assert run("calibrate", "rows.jsonl").code == 0
    server.set_behavior("gpt-4o", ModelBehavior(answer=GOOD_ANSWER))
    decisions = []
    for row in (ROWS[0], ROWS[1], ROWS[3], ROWS[70], ROWS[72]):
        server.set_behavior("gpt-4o-mini", ModelBehavior(answer=row["response"]))
        ask = run("ask", row["query"], "--json")
        assert ask.code == 0, ask.stderr
        draft = ask.json()["calls"][0]
        assert draft["role"] == "draft"
        check = run("quality", "check", "--query", row["query"], "--response", row["response"], "--json")
        assert check.code == 0, check.stderr
        checked = check.json()
        assert checked["calibrated"] is True
        assert draft["quality_score"] == checked["score"]
        assert draft["accepted"] == checked["passed"] == ask.json()["draft_accepted"]
        decisions.append(checked["passed"])
    assert True in decisions and False in decisions  # both paths were exercised


def test_target_quality_in_the_config_picks_the_stored_thresholds(
    server: ReplayServer, tmp_path: Path
) -> None:
    config = calibrated_config(tmp_path, server)
    run = CliRunner(tmp_path, config, tmp_path / "ledger.db")
    assert run("calibrate", str(FIXTURE)).code == 0
    stored = json.loads((tmp_path / "calibration.json").read_text(encoding="utf-8"))
    args = ("quality", "check", "--query", ROWS[0]["query"], "--response", ROWS[0]["response"], "--json")
    own = run(*args).json()
    assert own["threshold"] == stored["thresholds_by_domain"].get("math", stored["threshold"])
    config.write_text(config.read_text(encoding="utf-8") + "target_quality = 1.0\n", encoding="utf-8")
    strict = run(*args)
    assert strict.code == 0, strict.stderr
    assert strict.json()["threshold"] == stored["by_target"]["1.00"]["threshold"]
    assert strict.json()["threshold"] >= own["threshold"]


CODE_GOOD = "```python\ndef double(n):\n    return 2 * n\n```\n\n```python\nprint(double(2))  # 4\n```\n"
CODE_BAD = CODE_GOOD.replace("2 * n", "n + 3")


def test_a_calibration_fitted_with_code_execution(server: ReplayServer, tmp_path: Path) -> None:
    """`calibrate --execute-code` fits on what running the drafts' own examples shows; such
    a calibration scores only where [quality] execute_code = true (else one line, exit 1,
    nothing called), and then tells the drafts apart by that alone."""
    rows = tmp_path / "code.jsonl"
    with rows.open("w", encoding="utf-8") as fh:
        for i in range(30):
            response = CODE_GOOD if i % 2 else CODE_BAD
            fh.write(json.dumps({"id": i, "query": f"Write function {i}", "response": response,
                                 "correct": bool(i % 2), "domain": "code"}) + "\n")
    config = calibrated_config(tmp_path, server, extra="execute_code = false\n")
    run = CliRunner(tmp_path, config, tmp_path / "ledger.db")
    fitted = run("calibrate", str(rows), "--execute-code", "--json")
    assert fitted.code == 0, fitted.stderr
    assert fitted.json()["auroc"] > 0.9
    stored = json.loads((tmp_path / "calibration.json").read_text(encoding="utf-8"))
    assert "exec_failed_share" in stored["features"]
    for args in (("ask", "Write function 1"),
                 ("quality", "check", "--query", "Write function 1", "--response", CODE_GOOD)):
        refused = run(*args)
        assert refused.code == 1 and "execute_code = true" in refused.stderr
        assert_one_error_line(refused.stderr)
    assert server.requests == []
    text = config.read_text(encoding="utf-8").replace("execute_code = false", "execute_code = true")
    config.write_text(text, encoding="utf-8")
    scores = []
    for response in (CODE_GOOD, CODE_BAD):
        check = run("quality", "check", "--query", "Write function 1", "--response", response,
                    "--domain", "code", "--json")
        assert check.code == 0, check.stderr
        scores.append(check.json()["score"])
    assert scores[0] > scores[1]


def code_rows(path: Path) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(30):
            response = CODE_GOOD if i % 2 else CODE_BAD
            fh.write(json.dumps({"id": i, "query": f"Write function {i}", "response": response,
                                 "correct": bool(i % 2), "domain": "code"}) + "\n")
    return path


def features_of(path: Path) -> list[str]:
    return json.loads(path.read_text(encoding="utf-8"))["features"]


@pytest.mark.skipif(not sandbox.support().available, reason="no kernel sandbox here")
def test_code_execution_is_on_by_default_where_the_kernel_sandbox_is(
    server: ReplayServer, tmp_path: Path
) -> None:
    """Unset [quality] execute_code: `calibrate` runs the drafts' code where the kernel
    sandbox is available (and quality check scores with it); --no-execute-code turns it
    off. Where the sandbox is unavailable it stays off, said once, and --execute-code
    still runs it as before, said once."""
    rows = code_rows(tmp_path / "code.jsonl")
    config = calibrated_config(tmp_path, server)
    run = CliRunner(tmp_path, config, tmp_path / "ledger.db")
    fitted = run("calibrate", str(rows), "--json")
    assert fitted.code == 0 and fitted.stderr == "", fitted.stderr
    assert "exec_failed_share" in features_of(tmp_path / "calibration.json")
    check = ("quality", "check", "--query", "Write function 1", "--domain", "code", "--json", "--response")
    scores = [run(*check, r).json()["score"] for r in (CODE_GOOD, CODE_BAD)]
    assert scores[0] > scores[1]
    off = run("calibrate", str(rows), "--no-execute-code", "--output", str(tmp_path / "off.json"))
    assert off.code == 0, off.stderr
    assert "exec_failed_share" not in features_of(tmp_path / "off.json")

    def unsandboxed(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "cascadeflow_cli", "calibrate", str(rows), "--output", *args]
        return subprocess.run(command, cwd=tmp_path, env=run.env(), capture_output=True, text=True,
                              preexec_fn=no_user_namespaces)  # fmt: skip

    plain = unsandboxed(str(tmp_path / "plain.json"))
    assert plain.returncode == 0, plain.stderr
    assert plain.stderr.count("\n") == 1 and "drafts' code is not run" in plain.stderr
    assert "max_user_namespaces" in plain.stderr
    assert "exec_failed_share" not in features_of(tmp_path / "plain.json")
    forced = unsandboxed(str(tmp_path / "forced.json"), "--execute-code")
    assert forced.returncode == 0, forced.stderr
    assert forced.stderr.count("\n") == 1 and "no kernel sandbox for drafts' code" in forced.stderr
    assert "exec_failed_share" in features_of(tmp_path / "forced.json")
