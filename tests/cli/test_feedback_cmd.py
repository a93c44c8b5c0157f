"""Labels from use, end to end: `cascade feedback`, shadow verification in a real `cascade
ask` process, the measured quality in `cascade usage`, `calibrate --from-ledger`, the
quality threshold in `ask`, and the `[quality]` keys' validation."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.cli.support import REFUSAL, rows, stderr_lines, wait_until
from tests.conftest import GOOD_ANSWER, CliRunner, assert_one_error_line, config_text

MATH = "A shop sells 6 boxes of 7 pens. How many pens is that?"
DRAFT = "There are 6 boxes with 7 pens each, so 6 * 7 = 42 pens in all.\n#### 42"


def with_quality(cli: CliRunner, server: ReplayServer, quality: str) -> None:
    assert cli.config is not None
    cli.config.write_text(config_text(server.base_url, extra=f"[quality]\n{quality}\n"), encoding="utf-8")


def ask_id(cli: CliRunner, query: str = "What is the capital of France?", *extra: str) -> str:
    run = cli("ask", query, "--json", *extra)
    assert run.code == 0, run.stderr
    return str(run.json()["request_id"])  # type: ignore[index]


def test_feedback_labels_and_a_second_label_replaces_the_first(cli: CliRunner, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    rid = ask_id(cli)
    run = cli("feedback", rid, "good", "--note", "checked by hand")
    assert run.code == 0, run.stderr
    assert stderr_lines(run.stderr) == [f"labelled {rid}: good"]
    [label] = rows(cli.db, "quality_labels")
    assert (label["request_id"], label["source"], label["correct"], label["note"]) == (
        rid,
        "feedback",
        1,
        "checked by hand",
    )
    run = cli("feedback", rid, "BAD", "--json")
    assert run.code == 0, run.stderr
    assert run.json() == {"request_id": rid, "label": "bad", "note": None, "replaced": True}
    [label] = rows(cli.db, "quality_labels")
    assert label["correct"] == 0 and label["note"] is None
    assert label["created_at"] <= label["updated_at"]


def test_feedback_for_an_unknown_request_is_one_line_and_writes_nothing(
    cli: CliRunner, server: ReplayServer
) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    ask_id(cli)
    run = cli("feedback", "no-such-request", "good")
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert "no-such-request" in run.stderr
    assert rows(cli.db, "quality_labels") == []
    bad = cli("feedback", "whatever", "meh")
    assert bad.code == 1 and "good or bad" in bad.stderr
    assert_one_error_line(bad.stderr)


def test_usage_shows_the_measured_quality_of_accepted_drafts(cli: CliRunner, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    ids = [ask_id(cli) for _ in range(3)]
    plain = cli("usage", "--json").json()["total"]  # type: ignore[index]
    assert (plain["labelled_drafts"], plain["measured_quality"]) == (0, None)
    assert "quality" not in cli("usage").stdout  # no labels, no column
    for rid, verdict in zip(ids, ["good", "good", "bad"], strict=True):
        assert cli("feedback", rid, verdict).code == 0
    data = cli("usage", "--json", "--by", "model").json()
    total = data["total"]  # type: ignore[index]
    assert (total["labelled_drafts"], total["labelled_good"]) == (3, 2)
    assert total["measured_quality"] == pytest.approx(2 / 3, abs=1e-4)
    [mini] = [g for g in data["groups"] if g["model"] == "mini"]  # type: ignore[index]
    assert mini["labelled_drafts"] == 3
    table = cli("usage")
    assert table.code == 0 and "quality" in table.stdout and "67% of 3" in table.stdout


def test_shadow_in_a_real_ask_answers_first_and_labels_after(cli: CliRunner, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=DRAFT))
    server.set_behavior("gpt-4o", ModelBehavior(answer="#### 42", latency_s=2.0))
    with_quality(cli, server, "shadow_rate = 1.0")
    proc = cli.popen("ask", MATH, "--domain", "math", "--json")
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the answer, flushed before the shadow is waited for
    answered = time.monotonic()
    wait_until(lambda: server.request_count("gpt-4o") == 1)
    assert proc.poll() is None  # the answer is out, the shadow still in flight
    out, err = proc.communicate(timeout=60)
    exited = time.monotonic()
    assert proc.returncode == 0, err
    assert json.loads(line)["answer"] == DRAFT and out == ""
    assert exited - answered > 0.5  # the process waited for the shadow, the answer did not
    [label] = rows(cli.db, "quality_labels")
    assert (label["source"], label["correct"], label["status"]) == ("shadow", 1, "ok")
    assert [c["role"] for c in rows(cli.db, "calls")] == ["draft", "shadow"]
    assert rows(cli.db, "reservations") == []


def test_a_failing_shadow_never_costs_the_answer(cli: CliRunner, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=DRAFT))
    server.set_behavior("gpt-4o", ModelBehavior(status=500))
    with_quality(cli, server, "shadow_rate = 1.0")
    run = cli("ask", MATH, "--domain", "math")
    assert run.code == 0 and run.stdout == DRAFT + "\n"
    [label] = rows(cli.db, "quality_labels")
    assert label["status"] == "error"


def test_labels_from_real_runs_become_calibration_rows(cli: CliRunner, server: ReplayServer) -> None:
    """What `calibrate --from-ledger` fits on: the rows of ledger.labels.calibration_rows,
    made by real `cascade ask` and `cascade feedback` processes."""
    from cascadeflow_cli.ledger.db import open_ledger
    from cascadeflow_cli.ledger.labels import calibration_rows

    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=DRAFT))
    server.set_behavior("gpt-4o", ModelBehavior(answer="#### 42"))
    with_quality(cli, server, "shadow_rate = 1.0\nlogprobs = true")
    shadowed = ask_id(cli, MATH, "--domain", "math")
    with_quality(cli, server, "logprobs = true")
    judged = ask_id(cli, MATH, "--domain", "math")
    assert cli("feedback", judged, "bad").code == 0
    ask_id(cli, MATH, "--domain", "math")  # no label: no row
    with open_ledger(cli.db) as ledger:
        written = calibration_rows(ledger)
    by_id = {r["id"]: r for r in written}
    assert set(by_id) == {shadowed, judged}
    assert by_id[shadowed]["correct"] is True and by_id[shadowed]["label_source"] == "shadow"
    assert by_id[judged]["correct"] is False and by_id[judged]["label_source"] == "feedback"
    for r in written:  # a calibration file's keys, and the live features the check saw
        assert r["query"] == MATH and r["response"] == DRAFT and r["domain"] == "math"
        assert r["logprob_min"] <= r["logprob_p10"] <= r["logprob_p25"] <= 0 and "logprobs" not in r
        assert r["logprob_min"] <= r["logprob_mean"] <= 0
        json.dumps(r)  # JSON-able, as a calibration file's rows are


def test_ask_reports_the_threshold_the_score_was_compared_with(cli: CliRunner, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=REFUSAL))
    server.set_behavior("gpt-4o", ModelBehavior(answer=GOOD_ANSWER))
    run = cli("ask", "What is the capital of France?", "--json")
    data = run.json()
    assert data["quality_threshold"] == 0.7 and data["calibrated"] is False  # type: ignore[index]
    text = cli("ask", "What is the capital of France?")
    [summary] = stderr_lines(text.stderr)
    draft_score = data["calls"][0]["quality_score"]  # type: ignore[index]
    assert f"draft quality {draft_score:.2f} < 0.70" in summary
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    accepted = cli("ask", "What is the capital of France?", "--json").json()
    assert accepted["draft_accepted"]  # type: ignore[index]
    [summary] = stderr_lines(cli("ask", "What is the capital of France?").stderr)
    assert f"quality {accepted['quality_score']:.2f} ≥ 0.70" in summary  # type: ignore[index]
    logged = cli("logs", "-n", "1", "--json").json()[0]  # type: ignore[index]
    assert logged["quality_threshold"] == 0.7 and logged["calibrated"] is False


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("shadow_rate = -0.1", "quality.shadow_rate"),
        ("shadow_rate = 1.5", "between 0 and 1"),
        ("consistency_samples = 2.5", "whole number"),
        ("consistency_samples = 0", "quality.consistency_samples"),
        ("logprobs = 1", "true or false"),
        ("target_quality = 0", "quality.target_quality"),
        ("shadow = 0.1", "unknown key"),
    ],
)
def test_bad_quality_keys_are_one_line_exit_1(
    cli: CliRunner, server: ReplayServer, line: str, words: str
) -> None:
    with_quality(cli, server, line)
    run = cli("ask", "hello")
    assert run.code == 1 and words in run.stderr
    assert_one_error_line(run.stderr)
    assert server.request_count() == 0


def test_quality_keys_show_in_config_show(cli: CliRunner, server: ReplayServer) -> None:
    with_quality(cli, server, "shadow_rate = 0.05\nconsistency_samples = 3")
    run = cli("config", "show", "--json")
    assert run.code == 0, run.stderr
    quality = run.json()["quality"]  # type: ignore[index]
    assert quality["shadow_rate"] == 0.05 and quality["consistency_samples"] == 3
    assert quality["logprobs"] is False


def test_calibrate_from_ledger_without_enough_labels_is_one_line(
    cli: CliRunner, server: ReplayServer
) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    rid = ask_id(cli)
    run = cli("calibrate", "--from-ledger")
    assert run.code == 1 and "labelled" in run.stderr
    assert_one_error_line(run.stderr)
    assert cli("feedback", rid, "good").code == 0
    run = cli("calibrate", "--from-ledger")  # one label: too few to fit, whichever model fits
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert not (cli.cwd / "calibration.json").exists()


def test_batch_waits_for_its_shadows(cli: CliRunner, server: ReplayServer, tmp_path: Path) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=DRAFT))
    server.set_behavior("gpt-4o", ModelBehavior(answer="#### 42", latency_s=0.5))
    with_quality(cli, server, "shadow_rate = 1.0")
    rows_in = tmp_path / "in.jsonl"
    rows_in.write_text(
        "".join(json.dumps({"id": i, "query": MATH, "domain": "math"}) + "\n" for i in range(3))
    )
    run = cli("batch", str(rows_in), "--output", str(tmp_path / "out.jsonl"))
    assert run.code == 0, run.stderr
    labels = rows(cli.db, "quality_labels")
    assert len(labels) == 3 and {label["correct"] for label in labels} == {1}
    assert rows(cli.db, "reservations") == []
