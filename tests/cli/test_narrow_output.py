"""Human output on an 80-column terminal keeps its point, amounts read as amounts, and
counts take the right plural (issue 11, item 13). Through the real command."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from cascadeflow_cli.money import format_dollars, format_usd
from cascadeflow_cli.words import count_of
from tests.conftest import CliRunner

NARROW = {"COLUMNS": "80"}
LONG_QUERY = (
    "Explain in detail how photosynthesis converts light into chemical energy, including "
    "the light-dependent reactions and the Calvin cycle"
)


def _width(text: str) -> int:
    return max(len(line.rstrip()) for line in text.splitlines())


def _joined(text: str) -> str:
    """The output with its line breaks and indents folded away, to find a wrapped phrase."""
    return " ".join(text.split())


def _import(cli: CliRunner, tmp_path: Path, rows: list[str]) -> None:
    path = tmp_path / "history.csv"
    path.write_text("timestamp,user,model,cost,query\n" + "\n".join(rows) + "\n", encoding="utf-8")
    run = cli("import", str(path))
    assert run.code == 0, run.stderr


@pytest.mark.parametrize(
    ("usd", "shown"),
    [
        ("0", "$0.00"),
        ("0.000000005", "$0.000000005"),
        ("0.00005055", "$0.0000506"),
        ("0.00041665", "$0.000417"),
        ("0.5", "$0.50"),
        ("0.9996", "$1.00"),
        ("1000000000", "$1,000,000,000.00"),
        ("-0.0000242", "-$0.0000242"),
        ("12.345", "$12.34"),
    ],
)
def test_one_money_format_for_people(usd: str, shown: str) -> None:
    assert format_dollars(Decimal(usd)) == shown
    assert format_dollars(float(usd)) == shown  # floats from the analytics read the same
    nanos = Decimal(usd) * 10**9
    if nanos == nanos.to_integral_value():
        assert format_usd(int(nanos)) == shown


def test_counted_nouns() -> None:
    assert [count_of(n, "day") for n in (0, 1, 2, 1500)] == ["0 days", "1 day", "2 days", "1,500 days"]
    assert count_of(1, "anomaly") == "1 anomaly" and count_of(3, "anomaly") == "3 anomalies"


def test_budgets_at_80_columns(cli: CliRunner) -> None:
    assert (
        cli("budget", "set", "tiny", "--daily", "0.000000005").stderr
        == "budget for tiny: daily $0.000000005\n"
    )
    run = cli("budget", "set", "huge", "--daily", "1000000000", "--monthly", "5")
    assert run.stderr == "budget for huge: daily $1,000,000,000.00, monthly $5.00\n"
    listing = cli("budget", "list", **NARROW)
    assert listing.code == 0
    assert "$1,000,000,000.00" in listing.stdout and "$0.000000005" in listing.stdout
    assert _width(listing.stdout) < 70  # as wide as its content, not stretched to the screen
    show = cli("budget", "show", "huge", **NARROW)
    assert show.code == 0, show.stderr
    assert _width(show.stdout) <= 80
    assert show.stdout.count("$1,000,000,000.00") == 2  # limit and remaining, whole
    assert re.search(r"\d{4}-\d\d-\d\d 00:00 UTC", show.stdout)  # the reset time, whole
    assert "…" not in show.stdout
    for run in (listing, show):
        assert not re.search(r"\dE[+-]\d", run.stdout + run.stderr)


def test_logs_at_80_columns_keep_the_query(cli: CliRunner, tmp_path: Path) -> None:
    _import(cli, tmp_path, [f'2026-11-02T10:00:00Z,alice,gpt-4o,0.00005055,"{LONG_QUERY}"'])
    run = cli("logs", **NARROW)
    assert run.code == 0, run.stderr
    assert _width(run.stdout) <= 80
    assert LONG_QUERY in _joined(run.stdout) and "…" not in run.stdout
    assert "$0.0000506" in run.stdout and "e-05" not in run.stdout


def test_anomalies_at_80_columns_keep_the_why(cli: CliRunner, tmp_path: Path) -> None:
    start = date(2026, 9, 1)
    rows = [
        f"{start + timedelta(days=d)}T12:00:00Z,zed,gpt-4o,{5 if d == 50 else 0.1 + (d % 5) / 100},q"
        for d in range(60)
    ]
    _import(cli, tmp_path, rows)
    run = cli("anomalies", "--user", "zed", "--until", "2026-10-30", **NARROW)
    assert run.code == 0, run.stderr
    assert _width(run.stdout) <= 80
    assert "spike: $5.00 on 2026-10-21 against" in _joined(run.stdout)


def test_short_history_says_one_day_not_one_days(cli: CliRunner, tmp_path: Path) -> None:
    _import(cli, tmp_path, ["2026-11-30T10:00:00Z,al,gpt-4o,0.5,q"])
    run = cli("forecast", "--user", "al", "--as-of", "2026-12-01", **NARROW)
    assert run.code == 0, run.stderr
    text = _joined(run.stdout + run.stderr)
    assert "1 day of history" in text and "1 days" not in text and "day(s)" not in text
    imported = cli("import", str(tmp_path / "history.csv"))
    assert "imported 0 requests (0 calls)" in imported.stderr


@pytest.mark.parametrize("columns", ["20", "40"])
@pytest.mark.parametrize("args", [["logs"], ["usage"], ["usage", "--by", "user"]], ids=" ".join)
def test_a_very_narrow_screen_reads_one_field_a_line_not_ellipses(
    cli: CliRunner, tmp_path: Path, columns: str, args: list[str]
) -> None:
    # at COLUMNS=20 `logs` and `usage` were rows of "…": the fixed columns were cut
    _import(cli, tmp_path, [f'2026-11-02T10:00:00Z,alice,gpt-4o,0.00005055,"{LONG_QUERY}"',
                            "2026-11-02T11:00:00Z,bob,gpt-4o,0.5,short question"])
    run = cli(*args, COLUMNS=columns)
    assert run.code == 0, run.stderr
    assert _width(run.stdout) <= int(columns) and "…" not in run.stdout, run.stdout
    lines = [line.strip() for line in run.stdout.splitlines()]
    if args == ["logs"]:
        assert "user: alice" in lines and "user: bob" in lines
        assert LONG_QUERY in _joined(run.stdout) and "$0.0000506" in run.stdout
    else:
        assert "cost: $0.50" in lines and "requests: 2" in lines  # the total's fields, whole
        if "--by" in args:
            assert "user: alice" in lines and "user: bob" in lines


@pytest.mark.parametrize("columns", ["0", "00"])
def test_a_width_of_0_is_no_width_not_an_empty_screen(cli: CliRunner, tmp_path: Path, columns: str) -> None:
    # COLUMNS=0 (some CI runners set it) printed every table and summary line as nothing
    _import(cli, tmp_path, ["2026-11-01T10:00:00Z,alice,gpt-4o-mini,0.25,hello"])
    run = cli("usage", COLUMNS=columns)
    assert run.code == 0 and "alice" in run.stdout and "$0.25" in run.stdout, run
    assert "alice" in cli("logs", COLUMNS=columns).stdout
