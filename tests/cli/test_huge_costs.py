"""Huge amounts (issue 11): one above the documented per-row maximum is refused with its
file:line; sums past SQLite's int64 (9.2e18 nano-dollars) stay exact and never raise
"integer overflow"."""

from __future__ import annotations

from pathlib import Path

import pytest

from cascadeflow_cli.money import MAX_AMOUNT_USD
from tests.cli.support import rows
from tests.conftest import CliRunner, assert_one_error_line

HEADER = "timestamp,user,model,cost\n"


def _csv(path: Path, costs: list[str]) -> Path:
    path.write_text(
        HEADER + "".join(f"2026-01-0{i % 9 + 1}T10:00:00Z,alice,big,{c}\n" for i, c in enumerate(costs)),
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("cost", ["5000000000", "99999999999", "1e30"])
def test_a_cost_above_the_maximum_is_refused_with_its_line(tmp_path: Path, cost: str) -> None:
    cli = CliRunner(tmp_path, None, tmp_path / "ledger.db")
    run = cli("import", str(_csv(tmp_path / "h.csv", ["0.5", cost])))
    assert run.code == 1, run.stderr
    assert_one_error_line(run.stderr)
    assert "h.csv:3" in run.stderr and "maximum" in run.stderr and "unexpected" not in run.stderr
    assert rows(cli.db, "requests") == []  # all or nothing


def test_sums_past_int64_are_exact(tmp_path: Path) -> None:
    cli = CliRunner(tmp_path, None, tmp_path / "ledger.db")
    top = str(MAX_AMOUNT_USD)  # the largest allowed: 12 of them overflow an int64 of nanos
    costs = [top] * 12 + ["0.000000001"]
    run = cli("import", str(_csv(tmp_path / "h.csv", costs)))
    assert run.code == 0, run.stderr
    expected = 12 * MAX_AMOUNT_USD + MAX_AMOUNT_USD / MAX_AMOUNT_USD / 10**9
    for args in (
        ["usage", "--json"],
        ["usage", "--by", "day", "--json"],
        ["usage", "--by", "model", "--json"],
    ):
        shown = cli(*args)
        assert shown.code == 0, (args, shown.stderr)
        assert "overflow" not in shown.stderr
    data = cli("usage", "--json").json()
    assert isinstance(data, dict)
    assert data["total"]["cost"] == pytest.approx(float(expected), rel=1e-15)
    for args in (
        ["usage"],
        ["logs"],
        ["forecast", "--json"],
        ["anomalies", "--json"],
        ["budget", "show", "alice"],
    ):
        shown = cli(*args)
        assert "unexpected" not in shown.stderr and "overflow" not in shown.stderr, (args, shown.stderr)


@pytest.mark.parametrize(
    "text",
    [
        '[[models]]\nname = "m"\nmodel = "openai/gpt-4o"\n'
        "input_cost_per_million = 1e10\noutput_cost_per_million = 1",
        "[budgets.default]\ndaily = 2e9",
        "[budgets]\nfallback_input_cost_per_million = 1e12\nfallback_output_cost_per_million = 1",
    ],
)
def test_config_amounts_above_the_maximum_are_refused(text: str) -> None:
    from cascadeflow_cli.config import parse_config
    from cascadeflow_cli.errors import ConfigError

    with pytest.raises(ConfigError, match="maximum"):
        parse_config(text)
