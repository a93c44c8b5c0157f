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
