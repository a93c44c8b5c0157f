"""A $0 budget means "this user may spend nothing" (issue 11): it blocks like any other
exhausted budget, and `budget show` renders it, instead of dividing by zero."""

from __future__ import annotations

from pathlib import Path

import pytest

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.cli.support import rows
from tests.conftest import GOOD_ANSWER, CliRunner, assert_one_error_line, config_text

PRICES = "input_cost_per_million = 1.0\noutput_cost_per_million = 1.0\n"


def _runner(tmp_path: Path, server: ReplayServer, budgets: str) -> CliRunner:
    server.set_behavior(
        "gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, prompt_tokens=10, completion_tokens=10)
    )
    path = tmp_path / "cascadeflow.toml"
    path.write_text(config_text(server.base_url, mini_extra=PRICES, big_extra=PRICES) + budgets)
    return CliRunner(tmp_path, path, tmp_path / "ledger.db")


@pytest.mark.parametrize("mode", ["block", "degrade"])
def test_a_zero_default_budget_blocks_before_any_call(
    tmp_path: Path, server: ReplayServer, mode: str
) -> None:
    cli = _runner(tmp_path, server, f'\n[budgets]\nmode = "{mode}"\n[budgets.default]\ndaily = 0\n')
    run = cli("ask", "What is the capital of France?", "--user", "nobody")
    assert run.code == 3, run.stderr
    assert_one_error_line(run.stderr)
    assert "blocked" in run.stderr and "$0" in run.stderr
    assert server.request_count() == 0
    [req] = rows(cli.db, "requests")
    assert req["status"] == "blocked" and req["cost_nusd"] == 0
    assert rows(cli.db, "reservations") == []


def test_a_zero_limit_set_on_the_command_line_blocks_and_shows(tmp_path: Path, server: ReplayServer) -> None:
    cli = _runner(tmp_path, server, '\n[budgets]\nmode = "block"\n')
    assert cli("budget", "set", "tiny", "--daily", "0").code == 0
    run = cli("ask", "What is the capital of France?", "--user", "tiny")
    assert run.code == 3, run.stderr
    assert server.request_count() == 0
    shown = cli("budget", "show", "tiny", "--json")
    assert shown.code == 0, shown.stderr
    data = shown.json()
    assert isinstance(data, dict)
    [daily] = data["windows"]
    assert daily["limit"] == 0.0 and daily["remaining"] == 0.0 and daily["pct_used"] == 100.0
    assert data["next_action"] == "block"
    human = cli("budget", "show", "tiny")
    assert human.code == 0 and "100%" in human.stdout and "unexpected" not in human.stderr
    batch = tmp_path / "in.jsonl"
    batch.write_text('{"id": 1, "query": "hi there", "user": "tiny"}\n')
    ran = cli("batch", str(batch))
    assert "ZeroDivision" not in ran.stdout + ran.stderr
    assert '"error"' in ran.stdout and "blocked" in ran.stdout


def test_a_zero_limit_in_warn_mode_warns_and_records(tmp_path: Path, server: ReplayServer) -> None:
    cli = _runner(tmp_path, server, "\n[budgets.default]\ndaily = 0\n")
    first = cli("ask", "What is the capital of France?")
    assert first.code == 0, first.stderr
    second = cli("ask", "What is the capital of Spain?")  # now spent > $0 of $0
    assert second.code == 0, second.stderr
    assert "warning" in first.stderr and "unexpected" not in second.stderr
    shown = cli("budget", "show", "default", "--json")
    assert shown.code == 0 and shown.json()["windows"][0]["pct_used"] == 100.0  # type: ignore[index]


def test_a_default_budget_that_rounds_to_zero_is_a_config_error(tmp_path: Path, server: ReplayServer) -> None:
    cli = _runner(tmp_path, server, "\n[budgets.default]\ndaily = 1e-10\n")
    run = cli("ask", "hi there")
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert "budgets.default.daily" in run.stderr and "smallest amount" in run.stderr
    assert server.request_count() == 0
