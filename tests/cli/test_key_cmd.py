"""`cascade key create|list|revoke` from the command line."""

from __future__ import annotations

from tests.cli.support import rows
from tests.conftest import CliRunner, assert_one_error_line


def test_an_rpm_past_what_the_ledger_holds_is_a_usage_error(cli: CliRunner) -> None:
    # it was 'unexpected OverflowError: Python int too large to convert to SQLite INTEGER'
    run = cli("key", "create", "alice", "--rpm", "99999999999999999999")
    assert run.code == 1 and run.stdout == ""
    assert_one_error_line(run.stderr)
    assert "--rpm" in run.stderr and "unexpected" not in run.stderr
    assert rows(cli.db, "api_keys") == []
