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


def test_a_key_name_typed_composed_or_decomposed_is_one_name(cli: CliRunner) -> None:
    # "José" as U+00E9 and as e + U+0301 were stored as two names that look alike (hostile-18)
    for name in ("Jos\u00e9 laptop", "Jose\u0301 laptop"):
        run = cli("key", "create", "alice", "--name", name, "--json")
        assert run.code == 0, run.stderr
    assert [k["name"] for k in rows(cli.db, "api_keys")] == ["Jos\u00e9 laptop"] * 2


def test_a_key_name_that_would_look_like_another_is_refused(cli: CliRunner) -> None:
    for name, problem in (("ops\r", "control character"), ("ops\u200b", "invisible format character"),
                          ("\u202eops", "bidirectional control"), (" ", "the key name is empty"),
                          ("ops ", "starts or ends with a space")):
        run = cli("key", "create", "alice", "--name", name)
        assert (run.code, run.stdout) == (1, "")
        assert_one_error_line(run.stderr)
        assert "the key name" in run.stderr and problem in run.stderr
    assert rows(cli.db, "api_keys") == []


def test_a_key_pasted_where_a_name_goes_is_refused_not_stored(cli: CliRunner) -> None:
    # `budget set sk-cf-...` (budgets are per user) stored the key in plain text as a user's
    # name, which `key list --json`, `budget list` and `usage` then printed whole (hostile-20)
    made = cli("key", "create", "alice", "--json")
    assert made.code == 0, made.stderr
    key = made.json()["key"]  # type: ignore[index]
    provider = "sk-proj-" + "Ab3_" * 12
    for args in (("budget", "set", key, "--daily", "5"), ("key", "create", key),
                 ("key", "create", "alice", "--name", provider), ("ask", "--user", provider, "hi")):
        run = cli(*args)
        assert run.code == 1 and run.stdout == "", (args, run.stdout)
        assert_one_error_line(run.stderr)
        assert "looks like an API key" in run.stderr and key not in run.stderr and provider not in run.stderr
    assert len(rows(cli.db, "api_keys")) == 1 and rows(cli.db, "budgets") == []
    assert rows(cli.db, "requests") == []
    # a name that only starts like one is a name
    assert cli("budget", "set", "sk-team", "--daily", "1").code == 0


def test_a_key_is_revoked_by_its_whole_self_too(cli: CliRunner) -> None:
    # a leaked key pasted whole was "no key with prefix '[redacted]'": its owner had to find it
    made = cli("key", "create", "alice", "--json").json()
    key, prefix = made["key"], made["prefix"]  # type: ignore[index]
    run = cli("key", "revoke", key)
    assert run.code == 0, run.stderr
    assert prefix in run.stderr and key not in run.stderr + run.stdout
    assert rows(cli.db, "api_keys")[0]["revoked_at"]
    again = cli("key", "revoke", key)  # revoked now: not an active key, said without echoing it
    assert again.code == 1 and key not in again.stderr
    assert_one_error_line(again.stderr)
    assert cli("key", "revoke", prefix).code == 0  # the prefix, as before: revoking twice is no error
