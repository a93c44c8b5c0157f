"""A read command on a ledger that does not exist (hostile-11): `cascade usage` with a
path whose directory did not exist made the directory and an empty ledger, even under
HOME=/nonexistent/x. It now prints what an empty ledger prints and makes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from cascadeflow_cli.ledger.db import open_ledger
from tests.conftest import CliRunner

READERS = [["usage"], ["usage", "--json"], ["logs"], ["logs", "--json"], ["export", "--csv"],
           ["budget", "list"], ["key", "list"], ["anomalies"], ["forecast"]]


@pytest.mark.parametrize("args", READERS, ids=" ".join)
def test_a_read_command_on_no_ledger_prints_the_empty_ledger_and_makes_nothing(
    cli: CliRunner, tmp_path: Path, args: list[str]
) -> None:
    fresh = tmp_path / "not" / "yet" / "ledger.db"
    empty = tmp_path / "empty.db"
    open_ledger(empty).close()
    expected = cli(*args, CASCADE_DB=str(empty), HOME="/nonexistent/x")
    run = cli(*args, CASCADE_DB=str(fresh), HOME="/nonexistent/x")
    assert run.code == expected.code == 0, run.stderr
    assert run.stdout == expected.stdout.replace(str(empty), str(fresh))
    assert run.stderr == expected.stderr.replace(str(empty), str(fresh))
    assert not (tmp_path / "not").exists()


def test_a_missing_ledger_in_an_existing_directory_is_not_created_by_a_reader(cli: CliRunner) -> None:
    run = cli("usage", "--db", str(cli.db))
    assert run.code == 0, run.stderr
    assert not cli.db.exists() and not Path(f"{cli.db}.journal").exists()
