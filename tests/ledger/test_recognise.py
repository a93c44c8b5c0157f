"""An existing file used as the ledger: recognised before it is touched, made owner-only,
and a damaged one reported as such (issue 11, items 7, 8 and 9)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from cascadeflow_cli.errors import LedgerError
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.ledger.recognise import APPLICATION_ID
from tests.conftest import CliRunner, assert_one_error_line


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _foreign(path: Path, *, app_id: int = 0, wal: bool = False) -> Path:
    conn = sqlite3.connect(path)
    if app_id:
        conn.execute(f"PRAGMA application_id = {app_id}")
    conn.execute("create table requests (x)")  # a name we use too: the old failure
    conn.execute("create table notes (y)")
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("app_id", [0, 0x1234])
def test_a_foreign_sqlite_file_is_refused_untouched(tmp_path: Path, app_id: int) -> None:
    path = _foreign(tmp_path / "other.db", app_id=app_id)
    before = _digest(path)
    with pytest.raises(LedgerError, match="cannot open ledger: not a cascade ledger") as info:
        open_ledger(path)
    assert ("application_id 0x00001234" if app_id else "tables notes, requests") in str(info.value)
    assert _digest(path) == before
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL
    conn.close()
    assert not (tmp_path / "other.db-wal").exists()


def test_a_foreign_file_through_the_command(cli: CliRunner, tmp_path: Path) -> None:
    path = _foreign(tmp_path / "other.db")
    before = _digest(path)
    for command in (["logs"], ["usage"], ["budget", "list"]):  # read commands too
        run = cli(*command, "--db", str(path))
        assert run.code == 1, run.stderr
        assert_one_error_line(run.stderr)
        assert "not a cascade ledger" in run.stderr
    assert _digest(path) == before


def test_new_and_old_ledgers_carry_our_application_id(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    open_ledger(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    conn.execute("PRAGMA application_id = 0")  # a ledger made before the stamp
    conn.commit()
    conn.close()
    open_ledger(path).close()  # still recognised, by its migrations
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    conn.close()


@pytest.mark.parametrize("how", ["touch", "copy"])
def test_an_existing_ledger_is_made_owner_only(tmp_path: Path, how: str) -> None:
    path = tmp_path / "l.db"
    if how == "touch":
        path.touch()
    else:
        original = tmp_path / "orig.db"
        open_ledger(original).close()
        path.write_bytes(original.read_bytes())
    os.chmod(path, 0o644)
    wal = tmp_path / "l.db-wal"
    open_ledger(path).close()
    assert _mode(path) == 0o600
    wal.write_bytes(b"")  # a -wal left loose by a copy: tightened too
    os.chmod(wal, 0o664)
    open_ledger(path).close()
    assert not wal.exists() or _mode(wal) == 0o600


def test_a_loose_ledger_of_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    open_ledger(path).close()
    os.chmod(path, 0o644)
    try:
        os.chown(path, os.geteuid() + 4242, -1)
    except PermissionError:
        pytest.skip("giving a file away needs root")
    with pytest.raises(LedgerError, match=r"open to other users \(mode 0644\) and belongs to user"):
        open_ledger(path)
    assert _mode(path) == 0o644


def test_a_damaged_page_is_reported_as_a_ledger_problem(cli: CliRunner, tmp_path: Path) -> None:
    rows = ["timestamp,user,model,cost,query"]
    rows += [f"2026-09-01T12:00:00Z,u{i % 7},gpt-4o,0.01,{'x' * 300}{i}" for i in range(800)]
    history = tmp_path / "h.csv"
    history.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert cli("import", str(history)).code == 0
    conn = sqlite3.connect(cli.db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with cli.db.open("r+b") as fh:  # garbage over the middle third, not the header
        fh.seek(size * (pages // 3))
        fh.write(b"\xff" * size * (pages // 3))
    for command in (["usage"], ["export", "-o", str(tmp_path / "x.csv")]):
        run = cli(*command)
        assert run.code == 1, run.stderr
        assert_one_error_line(run.stderr)
        assert f"{cli.db}: cannot open ledger: database disk image is malformed" in run.stderr
        assert "unexpected" not in run.stderr
