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
