"""Inputs that never end (/dev/zero, a FIFO that keeps writing): each command stops at its
cap with one error line. They used to be read until the kernel killed the process for its
memory (exit 137), or under a memory limit, `unexpected MemoryError`."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CliRunner, assert_one_error_line


@contextlib.contextmanager
def endless(path: Path) -> Iterator[Path]:
    """A FIFO at ``path`` that writes zero bytes for as long as someone reads it."""
    os.mkfifo(path)
    stop = threading.Event()

    def feed() -> None:
        chunk = b"\0" * (1 << 20)
        while not stop.is_set():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # no reader yet
                stop.wait(0.01)
                continue
            os.set_blocking(fd, True)
            try:
                while not stop.is_set():
                    os.write(fd, chunk)
            except OSError:  # the reader gave up (EPIPE)
                pass
            finally:
                os.close(fd)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        stop.set()
        with contextlib.suppress(OSError):  # unblock a writer waiting for a reader
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        thread.join(5)


@pytest.mark.parametrize(("args", "said"), [
    (["import", "{f}", "--format", "csv"], "{f}:1: a line is longer than 64 MiB"),
    (["import", "{f}", "--format", "jsonl"], "{f}:1: a line is longer than 64 MiB"),
    (["domain", "--input", "{f}"], "{f}:1: a line is longer than 64 MiB"),
    (["quality", "check", "--input", "{f}"], "{f}:1: a line is longer than 64 MiB"),
    (["calibrate", "{f}"], "{f}:1: a line is longer than 64 MiB"),
    (["quality", "check", "--query", "q", "--response", "r", "--calibration", "{f}"],
     "{f} is larger than 64 MiB"),
    (["--config", "{f}", "usage"], "{f} is larger than 64 MiB"),
], ids=["import-csv", "import-jsonl", "domain", "quality", "calibrate", "calibration", "config"])
def test_an_endless_input_file_is_one_error_line(tmp_path: Path, args: list[str], said: str) -> None:
    cli = CliRunner(tmp_path, None, tmp_path / "ledger.db")
    with endless(tmp_path / "zero") as path:
        run = cli(*[a.format(f=path) for a in args])
    assert run.code == 1, run.stderr
    assert_one_error_line(run.stderr)
    assert said.format(f=path) in run.stderr, run.stderr


def test_an_endless_query_on_stdin_is_one_error_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    cli = CliRunner(tmp_path, None, tmp_path / "ledger.db")
    with endless(tmp_path / "zero") as path, path.open("rb") as stdin:
        done = subprocess.run([sys.executable, "-m", "cascadeflow_cli", "ask", "-"], stdin=stdin,
                              capture_output=True, text=True, env=cli.env(OPENAI_API_KEY="sk-test"),
                              cwd=tmp_path, timeout=120)
    assert done.returncode == 1, done.stderr
    assert_one_error_line(done.stderr)
    assert "the query on stdin is larger than 64 MiB" in done.stderr
