"""A ledger the user may read but not write (hostile-7): another user's 0644 ledger, or
one's own in a read-only directory. The read-only commands open it read-only and work;
a writing command fails with one line. Root ignores file modes, so as root the commands
run as `nobody` (setpriv) with the system interpreter, when it is the venv's version."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cascadeflow_cli.ledger import journal
from cascadeflow_cli.ledger.db import open_ledger
from tests.conftest import Run, assert_one_error_line
from tests.ledger.test_db import request

ROOT = Path(__file__).resolve().parents[2]
READERS = [["usage"], ["logs"], ["export", "--csv"], ["budget", "show", "alice"], ["budget", "list"],
           ["forecast"], ["key", "list"], ["anomalies"]]
NOBODY = 65534


def _system_python() -> str | None:
    """An interpreter `nobody` may run (the venv's lives under /root) of the same version."""
    want = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (f"/usr/bin/{want}", f"/usr/local/bin/{want}"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _run_as(uid: int | None, db: Path, *args: str) -> Run:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(db.parent), "CASCADE_CONFIG": os.devnull,
           "CASCADE_DB": str(db), "LC_ALL": "C.UTF-8"}
    if uid is None:
        command = [sys.executable, "-m", "cascadeflow_cli", *args]
    else:
        python, setpriv = _system_python(), shutil.which("setpriv")
        if python is None or setpriv is None:
            pytest.skip("running as root, with no setpriv or no system python to run as nobody")
        site = next(p for p in sys.path if p.endswith("site-packages"))
        env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{site}"
        command = [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", python,
                   "-m", "cascadeflow_cli", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd="/")
    return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user can reach (pytest's tmp_path is root's, 0700)."""
    path = Path(tempfile.mkdtemp(prefix="cascade-ro-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        path.chmod(0o755)
        shutil.rmtree(path)


def _ledger(directory: Path) -> Path:
    db = directory / "l.db"
    with open_ledger(db) as ledger:
        ledger.record(request(1))
    return db


def _assert_readers_work(uid: int | None, db: Path) -> None:
    for args in READERS:
        run = _run_as(uid, db, *args)
        assert run.code == 0, (args, run.stderr)
        assert "error" not in run.stderr, (args, run.stderr)
    assert request(1).id in _run_as(uid, db, "logs", "--json").stdout
    unlabelled = _run_as(uid, db, "calibrate", "--from-ledger")  # past the open, to the labels
    assert unlabelled.code == 1 and str(db) not in unlabelled.stderr, unlabelled.stderr


def _assert_writer_refused(uid: int | None, db: Path) -> None:
    before = db.read_bytes()
    run = _run_as(uid, db, "budget", "set", "alice", "--daily", "5")
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert str(db) in run.stderr
    assert db.read_bytes() == before


def test_another_users_world_readable_ledger_can_be_read_not_written(shared_dir: Path) -> None:
    """Refused for every command: 'the ledger is open to other users (mode 0644) and
    belongs to user 0, so we cannot make it owner-only'. Reading it exposes nothing new."""
    if os.geteuid() != 0:
        pytest.skip("needs a second user to own the ledger: run as root to cover it")
    db = _ledger(shared_dir)
    db.chmod(0o644)
    _assert_readers_work(NOBODY, db)
    _assert_writer_refused(NOBODY, db)
    assert not db.with_name("l.db-shm").exists()  # a reader left no file of its own there


def test_ones_own_ledger_in_a_read_only_directory_can_be_read_not_written(shared_dir: Path) -> None:
    """SQLite cannot make the -shm file a WAL reader needs in a read-only directory:
    every command failed 'attempt to write a readonly database'."""
    directory = shared_dir / "ledger"
    directory.mkdir(mode=0o700)
    db = _ledger(directory)
    uid = NOBODY if os.geteuid() == 0 else None
    if uid is not None:
        os.chown(directory, uid, uid)
        os.chown(db, uid, uid)
    directory.chmod(0o500)
    try:
        _assert_readers_work(uid, db)
        _assert_writer_refused(uid, db)
    finally:
        directory.chmod(0o700)


def test_ledger_copy_reads_a_read_only_ledger_and_writes_nothing_to_it(shared_dir: Path) -> None:
    """`ledger copy` opened its source as a writer: a 0444 file in a read-only directory
    was chmod-ed to 0600 (written) and the copy then failed 'cannot write ledger: the file
    or its directory is read-only'. It only reads the source."""
    source_dir, out = shared_dir / "ledger", shared_dir / "out"
    source_dir.mkdir(mode=0o700)
    out.mkdir(mode=0o700)
    db = _ledger(source_dir)
    journal.write(db, request(2), None)  # answered, not recorded: a read-only open cannot take it in
    uid = NOBODY if os.geteuid() == 0 else None
    if uid is not None:
        for path in (source_dir, db, out, *journal.journal_dir(db).rglob("*"), journal.journal_dir(db)):
            os.chown(path, uid, uid)
    db.chmod(0o444)
    source_dir.chmod(0o500)
    before = (db.read_bytes(), db.stat().st_mode, sorted(source_dir.iterdir()))
    try:
        run = _run_as(uid, db, "ledger", "copy", str(db), str(out / "copy.db"), "--json")
        assert run.code == 0, run.stderr
        assert run.json()["requests"] == 1
        assert run.stderr.startswith("warning: 1 answered request(s) waiting in "), run.stderr
        assert (db.read_bytes(), db.stat().st_mode, sorted(source_dir.iterdir())) == before
        assert request(1).id in _run_as(uid, out / "copy.db", "logs", "--json").stdout
    finally:
        source_dir.chmod(0o700)
