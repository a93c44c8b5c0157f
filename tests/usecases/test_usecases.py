"""The use cases on a real ledger file: what the CLI's output is built from."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cascadeflow_cli.clock import FixedClock
from cascadeflow_cli.config import parse_config
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.usecases.batch import plan_batch
from cascadeflow_cli.usecases.budget import budget_report, estimate_next_request

PRICED = """
[[models]]
name = "mini"
model = "openai/mini-x"
input_cost_per_million = 1
output_cost_per_million = 2

[[models]]
name = "big"
model = "openai/big-x"
input_cost_per_million = 10
output_cost_per_million = 20

[cascade]
models = ["mini", "big"]
max_tokens = 100
"""


def test_the_next_request_estimate_is_the_chains_worst_case() -> None:
    estimate = estimate_next_request(parse_config(PRICED))
    # prompt: 200 bytes at two a token plus 8; both models write 100 tokens
    expected = (108 * 1 + 100 * 2) * 1000 + (108 * 10 + 100 * 20) * 1000
    assert estimate.priced and estimate.worst_case_nusd == expected
    assert estimate.degraded_nusd == (108 * 1 + 100 * 2) * 1000  # the chain without its dearest


def test_an_unpriced_model_gives_no_estimate_instead_of_failing() -> None:
    config = parse_config(PRICED.replace('model = "openai/big-x"\ninput_cost_per_million = 10\n'
                                         'output_cost_per_million = 20', 'model = "nowhere/unknown-x"'))
    estimate = estimate_next_request(config)
    assert (estimate.worst_case_nusd, estimate.degraded_nusd, estimate.priced) == (0, None, False)


def test_a_user_without_budget_has_no_outlook(tmp_path: Path) -> None:
    clock = FixedClock(datetime(2026, 5, 1, 12, tzinfo=UTC))
    with open_ledger(tmp_path / "ledger.db", clock) as ledger:
        report = budget_report(ledger, parse_config(PRICED), "alice")
    assert report.status.budget is None and report.outlook is None
    assert report.to_json()["outlook"] is None and report.to_json()["user"] == "alice"


def test_resume_cuts_a_torn_line_and_keeps_the_batch(tmp_path: Path) -> None:
    rows, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    rows.write_text('{"id": 1, "query": "a"}\n{"id": 2, "query": "b"}\n', encoding="utf-8")
    with open_ledger(tmp_path / "ledger.db") as ledger:
        first = plan_batch(ledger, rows, out, resume=False)
        out.write_text('{"id": 1, "answer": "x"}\n{"id": 2, "ans', encoding="utf-8")
        again = plan_batch(ledger, rows, out, resume=True)
    assert again.batch_id == first.batch_id and again.committed == {}
    assert len(again.done) == 1
    assert out.read_text(encoding="utf-8") == '{"id": 1, "answer": "x"}\n'
