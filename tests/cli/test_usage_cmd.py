"""`cascade usage` end to end, over the imported sample history (sample_data/history.csv)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CliRunner, assert_one_error_line

SAMPLE = Path(__file__).parents[2] / "sample_data" / "history.csv"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliRunner]:
    """The whole sample history imported once for the module (the tests only read it)."""
    tmp = tmp_path_factory.mktemp("usage")
    runner = CliRunner(tmp, None, tmp / "ledger.db")
    home = {"HOME": str(tmp / "home"), "XDG_CONFIG_HOME": str(tmp / "home" / ".config"),
            "XDG_DATA_HOME": str(tmp / "home" / ".local" / "share")}
    run = runner("import", str(SAMPLE), **home)
    assert run.code == 0, run.stderr
    yield runner


def report(runner: CliRunner, *args: str) -> Any:
    run = runner("usage", "--json", *args)
    assert run.code == 0, run.stderr
    return run.json()


def test_totals_and_the_default_breakdown_by_user(history: CliRunner) -> None:
    data = report(history)
    total = data["total"]
    assert (total["requests"], total["calls"], total["errors"]) == (20_184, 25_522, 0)
    assert total["cost"] == pytest.approx(174.9498, abs=1e-4)
    assert 0.6 < total["draft_acceptance_rate"] < 0.8 and total["savings"] > 0
    assert data["by"] == "user"
    users = [g["user"] for g in data["groups"]]
    assert sorted(users) == ["alice", "bob", "carol", "dave", "erin", "frank"]
    assert sum(g["requests"] for g in data["groups"]) == 20_184
    assert {"requests", "cost", "input_tokens", "output_tokens", "draft_acceptance_rate",
            "savings"} <= set(data["groups"][0])


def test_by_model_shows_the_switch_to_a_dearer_model(history: CliRunner) -> None:
    before = report(history, "--by", "model", "--user", "dave", "--until", "2026-10-14")
    after = report(history, "--by", "model", "--user", "dave", "--since", "2026-10-15")
    assert {g["model"] for g in before["groups"]} == {"mini", "big"}
    assert [g["model"] for g in after["groups"]] == ["o1"]
    per_request = [r["total"]["cost"] / r["total"]["requests"] for r in (before, after)]
    assert per_request[1] > 5 * per_request[0]


def test_by_day_shows_weekends_and_the_spike(history: CliRunner) -> None:
    days = {g["date"]: g for g in report(history, "--by", "day", "--user", "frank")["groups"]}
    assert len(days) == 120
    assert max(days, key=lambda d: days[d]["requests"]) == "2026-10-29"
    alice = {g["date"]: g["requests"] for g in report(history, "--by", "day", "--user", "alice")["groups"]}
    assert alice["2026-11-07"] < alice["2026-11-05"] / 2  # a Saturday against a Thursday


def test_by_provider_and_domain(history: CliRunner) -> None:
    providers = {g["provider"] for g in report(history, "--by", "provider")["groups"]}
    assert providers == {"openai", "anthropic"}
    domains = {g["domain"] for g in report(history, "--by", "domain")["groups"]}
    assert {"code", "legal", "medical"} <= domains


def test_human_table(history: CliRunner) -> None:
    run = history("usage", "--by", "provider", "--since", "2026-11-01")
    assert run.code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert any(line.split()[:1] == ["provider"] for line in lines)
    assert any(line.split()[:1] == ["openai"] for line in lines)
    assert any(line.split()[:1] == ["total"] for line in lines)


def test_bars() -> None:
    from cascadeflow_cli.cli.app import app  # noqa: F401  (registers the commands first)
    from cascadeflow_cli.cli.render.spend import bar

    assert bar(10, 10, width=4) == "████"
    assert bar(5, 10, width=4) == "██"
    assert bar(1, 10, width=4) == "▍"
    assert bar(0, 10) == "" and bar(3, 0) == ""


def test_empty_ledger_and_bad_options(tmp_path: Path) -> None:
    runner = CliRunner(tmp_path, None, tmp_path / "ledger.db")
    run = runner("usage")
    assert run.code == 0 and "no requests in the ledger yet" in run.stderr
    run = runner("usage", "--by", "week")
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert "--by must be one of user, model, provider, domain, day" in run.stderr
