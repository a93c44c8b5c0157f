"""An output path that names a file the command needs: the ledger itself (or a file SQLite
keeps beside it), or a batch's input through a hard link. Each used to be opened for
writing and emptied: every request the ledger held, or the input, gone."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.cli.support import rows
from tests.cli.test_batch_cmd import write_queries
from tests.conftest import FIXTURES, GOOD_ANSWER, CliRunner, assert_one_error_line


@pytest.fixture
def answered(cli: CliRunner, server: ReplayServer, tmp_path: Path) -> CliRunner:
    """A ledger holding three answered batch rows, its -wal file still beside it."""
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    write_queries(tmp_path / "in.jsonl", 3)
    run = cli("batch", "in.jsonl", "-o", "out.jsonl")
    assert run.code == 0, run.stderr
    assert len(rows(cli.db, "requests")) == 3
    return cli


@pytest.mark.parametrize("name", ["ledger.db", "ledger.db-wal", "ledger-link.db", "ledger.db-journal"])
@pytest.mark.parametrize("command", [
    ["batch", "in.jsonl", "-o"],
    ["batch", "in.jsonl", "--resume", "-o"],
    ["export", "--csv", "-o"],
    ["calibrate", str(FIXTURES / "calibration_sample.jsonl"), "--prices", "0.15,0.6,2.5,10", "--output"],
])
def test_the_ledger_is_never_an_output(answered: CliRunner, server: ReplayServer, tmp_path: Path,
                                       command: list[str], name: str) -> None:
    (tmp_path / "ledger.db-wal").touch()  # as a running command leaves it
    os.link(tmp_path / "ledger.db", tmp_path / "ledger-link.db")
    before = (tmp_path / "ledger.db").read_bytes()
    asked = server.request_count()
    run = answered(*command, name)
    assert run.code == 1, run.stderr
    assert_one_error_line(run.stderr)
    assert "that is the ledger file" in run.stderr
    assert (tmp_path / "ledger.db").read_bytes() == before
    assert not (tmp_path / "ledger.db-journal").exists()  # not there yet: SQLite's name all the same
    assert len(rows(answered.db, "requests")) == 3
    assert server.request_count() == asked  # refused before anything was asked


def test_a_hard_link_to_the_input_is_not_an_output(cli: CliRunner, server: ReplayServer,
                                                    tmp_path: Path) -> None:
    write_queries(tmp_path / "in.jsonl", 3)
    before = (tmp_path / "in.jsonl").read_text(encoding="utf-8")
    os.link(tmp_path / "in.jsonl", tmp_path / "out.jsonl")
    for extra in ([], ["--resume"]):
        run = cli("batch", "in.jsonl", "-o", "out.jsonl", *extra)
        assert run.code == 1, run.stderr
        assert_one_error_line(run.stderr)
        assert "the output cannot be the input file" in run.stderr
    assert (tmp_path / "in.jsonl").read_text(encoding="utf-8") == before
    assert server.request_count() == 0


@pytest.mark.parametrize("extra", [[], ["--resume"]])
def test_a_directory_as_the_output_is_one_line(cli: CliRunner, tmp_path: Path, extra: list[str]) -> None:
    write_queries(tmp_path / "in.jsonl", 1)
    (tmp_path / "results").mkdir()
    run = cli("batch", "in.jsonl", "-o", "results", *extra)
    assert run.code == 1
    assert_one_error_line(run.stderr)  # --resume said 'unexpected IsADirectoryError'
    assert "results: is a directory" in run.stderr
    assert not list((tmp_path / "results").iterdir())


def test_dev_stdout_on_a_pipe_is_an_output_and_a_fifo_cannot_be_resumed(cli: CliRunner, server: ReplayServer,
                                                                         tmp_path: Path) -> None:
    """`-o /dev/stdout` with stdout a pipe was 'cannot write: /proc/N/fd/pipe:[...]: No such
    file' (the path was resolved before it was opened); `--resume` on a FIFO read it back
    and waited for a writer for ever."""
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    write_queries(tmp_path / "in.jsonl", 2)
    proc = cli.popen("batch", "in.jsonl", "-o", "/dev/stdout")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert sorted(json.loads(line)["id"] for line in out.splitlines()) == ["q000", "q001"]
    os.mkfifo(tmp_path / "results")
    proc = cli.popen("batch", "in.jsonl", "-o", "results", "--resume")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert_one_error_line(err)
    assert "results: --resume reads the output back: it must be a regular file" in err
