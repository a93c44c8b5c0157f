"""Outputs that cannot be written (a full disk, a device that refuses): one error line and
exit 1, never `unexpected OSError`; what was paid for is in the ledger and said so."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.cli.support import rows
from tests.conftest import GOOD_ANSWER, CliRunner, assert_one_error_line


@pytest.fixture
def full(tmp_path: Path) -> Path:
    """A copy of /dev/full: every write fails with ENOSPC."""
    if os.geteuid() != 0:
        pytest.skip("making a copy of /dev/full needs root (mknod)")
    path = tmp_path / "full"
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    return path


def _run_to(cli: CliRunner, stdout: Path, *args: str) -> subprocess.CompletedProcess[str]:
    with stdout.open("w") as out:
        return subprocess.run([sys.executable, "-m", "cascadeflow_cli", *args], cwd=cli.cwd,
                              env=cli.env(OPENAI_API_KEY="sk-test"), stdout=out,
                              stderr=subprocess.PIPE, text=True, timeout=120)


@pytest.mark.parametrize("args", [
    ["ask", "What is the capital of France?"],
    ["ask", "--json", "What is the capital of France?"],
    ["ask", "--stream", "What is the capital of France?"],
    ["logs", "--json"],
    ["usage", "--json"],
    ["export"],
    ["budget", "show", "alice", "--json"],
])
def test_a_full_stdout_is_one_error_line(cli: CliRunner, server: ReplayServer, full: Path,
                                         args: list[str]) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    assert cli("ask", "What is 2 + 2?").code == 0  # something to show
    done = _run_to(cli, full, *args)
    assert done.returncode == 1, done.stderr
    assert_one_error_line(done.stderr)
    assert "No space left on device" in done.stderr and "unexpected" not in done.stderr
    if args[0] == "ask":  # answered and paid: in the ledger all the same
        asked = [r for r in rows(cli.db, "requests") if r["query"] == args[-1]]
        assert len(asked) == 1 and asked[0]["status"] == "ok"


def test_a_batch_output_on_a_full_disk_says_resume(cli: CliRunner, server: ReplayServer, full: Path,
                                                   tmp_path: Path) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    queries = tmp_path / "q.jsonl"
    queries.write_text("".join(json.dumps({"id": i, "query": f"What is {i} + {i}?"}) + "\n"
                               for i in range(3)))
    run = cli("batch", str(queries), "--output", str(full))
    assert run.code == 1, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    assert "No space left on device" in lines[0] and "--resume" in lines[0], run.stderr
    assert "unexpected" not in run.stderr
    answered = [r for r in rows(cli.db, "requests") if r["status"] == "ok"]
    assert 1 <= len(answered) <= 3  # what was answered is in the ledger, for --resume


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_ledger_path_that_is_a_fifo_or_device_is_refused_untouched(tmp_path: Path, kind: str) -> None:
    """`--db /dev/null` as root made /dev/null 0600 (the ledger is made owner-only) and
    left null-journal beside it, for every other user of the machine to trip on; a FIFO
    hung at open. Neither is a ledger: refused before anything is opened or changed."""
    path = tmp_path / "ledger.db"
    if kind == "fifo":
        os.mkfifo(path, 0o666)
    else:
        if os.geteuid() != 0:
            pytest.skip("making a copy of /dev/null needs root (mknod)")
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(path, 0o666)
    cli = CliRunner(tmp_path, None, path)
    for args in (["usage"], ["budget", "set", "alice", "--daily", "1"]):
        run = cli(*args)
        assert run.code == 1, run.stderr
        assert_one_error_line(run.stderr)
        assert "not a regular file" in run.stderr, run.stderr
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ledger")) == ["ledger.db"]


def test_reading_commands_do_not_wait_for_a_writer_s_lock(cli: CliRunner, server: ReplayServer) -> None:
    """Another process holds the ledger's write lock (a long import, a ledger copy): the
    ledger is in WAL mode, so readers need not wait; but every open took the write lock
    to check the migrations, and `usage` waited 30 s, then failed 'database is locked'."""
    import sqlite3

    assert cli("ask", "What is 2 + 2?").code == 0
    locker = sqlite3.connect(cli.db, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        for args in (["usage", "--json"], ["logs", "--json"], ["export"], ["budget", "show", "alice"]):
            run = cli(*args)
            assert run.code == 0, (args, run.stderr)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
