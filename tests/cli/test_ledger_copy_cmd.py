"""`cascade ledger copy` given one SQLite ledger under two spellings: refused, one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CliRunner, assert_one_error_line, ledger_rows


@pytest.mark.parametrize("spelling", ["link", "sqlite", "dotdot"])
def test_the_same_file_under_another_name_is_refused(cli: CliRunner, tmp_path: Path, spelling: str) -> None:
    # only an identical spelling was caught: a symlink, sqlite:///ABS or a/../ copied the
    # ledger into itself (reading and writing one file at once) and said "copied"
    assert cli("key", "create", "alice").code == 0
    (tmp_path / "link.db").symlink_to(cli.db)
    other = {"link": str(tmp_path / "link.db"), "sqlite": f"sqlite:///{cli.db}",
             "dotdot": f"{tmp_path}/../{tmp_path.name}/{cli.db.name}"}[spelling]
    run = cli("ledger", "copy", str(cli.db), other)
    assert run.code == 1 and "same ledger" in run.stderr, run.stderr
    assert_one_error_line(run.stderr)
    assert len(ledger_rows(cli.db, "api_keys")) == 1


def test_a_key_revoked_after_a_copy_is_revoked_by_the_next(cli: CliRunner, tmp_path: Path) -> None:
    """The second copy kept the target's key as it was: still active there."""
    made = cli("key", "create", "alice", "--json")
    assert made.code == 0, made.stderr
    prefix = made.json()["prefix"]  # type: ignore[index]
    target = tmp_path / "team.db"
    assert cli("ledger", "copy", str(cli.db), str(target)).code == 0
    assert cli("key", "revoke", prefix).code == 0
    again = cli("ledger", "copy", str(cli.db), str(target), "--json")
    assert again.code == 0, again.stderr
    [key] = ledger_rows(target, "api_keys")
    assert key["revoked_at"] == ledger_rows(cli.db, "api_keys")[0]["revoked_at"] is not None
    assert again.json()["keys_revoked"] == 1  # type: ignore[index]
