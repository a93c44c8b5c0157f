"""The options several commands share (cli/options.py), through the real commands."""

from __future__ import annotations

import pytest

from tests.conftest import FIXTURES, CliRunner, assert_one_error_line

EMPTY_USER = [["logs", "--user", ""], ["usage", "--user", " "], ["export", "--csv", "--user", ""],
              ["forecast", "--user", ""], ["anomalies", "--user", ""], ["key", "list", "--user", ""]]
EMPTY_DATE = [["logs", "--since", ""], ["usage", "--until", ""], ["export", "--csv", "--since", ""],
              ["forecast", "--as-of", ""], ["anomalies", "--since", ""], ["anomalies", "--until", " "]]


@pytest.mark.parametrize("args", EMPTY_USER + EMPTY_DATE, ids=lambda a: "-".join(x or "EMPTY" for x in a))
def test_an_empty_user_or_date_filter_is_refused_not_read_as_none(cli: CliRunner, args: list[str]) -> None:
    # "" was falsy downstream: `logs --user ''` said "no requests in the ledger yet" of a
    # ledger with rows, export wrote no rows, `usage --since ''` summed every row
    assert cli("import", str(FIXTURES / "history_bom_crlf.csv")).code == 0
    run = cli(*args)
    assert run.code == 1 and run.stdout == "", run
    assert_one_error_line(run.stderr)
    assert "is empty" in run.stderr and args[-2] in run.stderr


@pytest.mark.parametrize(("args", "named"), [
    (["logs", ""], "argument ''"),  # click's line read "Got unexpected extra argument(s) ()"
    (["usage", "a", "b c"], "arguments a 'b c'"),
    (["budget", "show", "bob", " "], "argument ' '"),
    (["logs", "x\ny"], "argument 'x\\ny'"),  # the newline escaped: still one line
])
def test_an_extra_argument_is_named_even_when_empty(cli: CliRunner, args: list[str], named: str) -> None:
    run = cli(*args)
    assert run.code == 1 and run.stdout == "", run
    assert_one_error_line(run.stderr)
    assert f"Got unexpected extra {named} (see `cascade" in run.stderr, run.stderr


@pytest.mark.parametrize("args", [
    ["logs", "--count", "５"], ["forecast", "--horizon", "٣"], ["budget", "set", "bob", "--daily", "۵"],
    ["budget", "set", "bob", "--weekly", "1_000"],
])
def test_a_number_in_other_scripts_digits_is_refused(cli: CliRunner, args: list[str]) -> None:
    # float('٣') and Decimal('۵') are 3 and 5: `budget set --daily ۵` stored a $5 limit
    run = cli(*args)
    assert run.code == 1 and run.stdout == "", run
    assert_one_error_line(run.stderr)
    assert args[-1] in run.stderr and args[-2] in run.stderr, run.stderr
    assert "budget for" not in run.stderr
