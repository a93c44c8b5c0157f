"""Calls the provider may bill though no answer came (a timeout after the request was
sent), end to end through `cascade ask`, `ask --stream` and `batch`: each is charged its
estimate in the ledger and in what the command reports, never $0 (docs/ledger-columns.md)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.cli.support import DETAILED, LONG_ANSWER, rows, stderr_lines
from tests.conftest import CliRunner, assert_one_error_line, config_text


@pytest.fixture
def slow(tmp_path: Path, server: ReplayServer) -> CliRunner:
    """Both models time out after 0.5 s, without retries (the provider answers in 1.5 s)."""
    text = config_text(server.base_url).replace("timeout = 5", "timeout = 0.5\nmax_retries = 0")
    config = tmp_path / "slow.toml"
    config.write_text(text, encoding="utf-8")
    for model in ("gpt-4o-mini", "gpt-4o"):
        server.set_behavior(model, ModelBehavior(answer=LONG_ANSWER, latency_s=1.5))
    return CliRunner(tmp_path, config, tmp_path / "ledger.db")


def _all_estimated(db: Path) -> int:
    calls = rows(db, "calls")
    assert calls and all(c["status"] == "error" and int(str(c["cost_nusd"])) > 0
                         and str(c["cost_source"]).endswith("+estimated-unanswered") for c in calls)
    assert rows(db, "reservations") == []
    total = sum(int(str(r["cost_nusd"])) for r in rows(db, "requests"))
    assert total == sum(int(str(c["cost_nusd"])) for c in calls)
    return total


@pytest.mark.parametrize("stream", [False, True])
def test_ask_whose_models_time_out_records_what_they_may_have_cost(slow: CliRunner, stream: bool) -> None:
    run = slow("ask", *(["--stream"] if stream else []), DETAILED)
    assert run.code == 2, run.stderr
    assert_one_error_line(run.stderr)
    assert "no answer within 0.5s" in run.stderr
    _all_estimated(slow.db)
    assert [c["role"] for c in rows(slow.db, "calls")] == ["draft", "verifier"]  # the draft escalated


def test_batch_counts_rows_that_timed_out_in_its_spend(slow: CliRunner, tmp_path: Path) -> None:
    queries = tmp_path / "in.jsonl"
    queries.write_text("".join(json.dumps({"id": i, "query": f"{DETAILED} ({i})"}) + "\n" for i in range(2)),
                       encoding="utf-8")
    run = slow("batch", str(queries), "--output", "out.jsonl")
    assert run.code == 5, run.stderr  # finished, rows ended in an error
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [set(r) for r in results] == [{"id", "error"}] * 2
    total = _all_estimated(slow.db)
    summary = stderr_lines(run.stderr)[-1]
    spent = re.search(r" · \$([0-9.]+) · ", summary)
    assert spent and Decimal(spent.group(1)) > 0, summary  # was $0: only answered rows were counted
    assert abs(Decimal(spent.group(1)) - Decimal(total) / 10**9) < Decimal("0.01")


def test_ask_whose_server_closes_after_the_request_says_so_and_charges_it(tmp_path: Path,
                                                                           server: ReplayServer) -> None:
    text = config_text(server.base_url).replace("timeout = 5", "timeout = 5\nmax_retries = 1")
    config = tmp_path / "closing.toml"
    config.write_text(text, encoding="utf-8")
    for model in ("gpt-4o-mini", "gpt-4o"):
        server.set_behavior(model, ModelBehavior(close_unanswered=True))
    cli = CliRunner(tmp_path, config, tmp_path / "ledger.db")
    run = cli("ask", DETAILED)
    assert run.code == 2, run.stderr
    *retries, error = stderr_lines(run.stderr)
    assert retries == [f"{m}: the connection ended without an answer, retrying in 0 s (2 of 2)"
                       for m in ("mini", "big")]
    assert error.startswith("error: big: ") and error.endswith(
        " took the request, then the connection ended without an answer (Remote end closed connection"
        " without response)")
    assert "cannot reach" not in run.stderr  # it said so: the server had the request
    _all_estimated(cli.db)  # each try sent is charged its estimate, as before
    assert server.request_count() == 4  # two models, a retry each: every try counted
