"""main() in cli/app.py: how a command's end becomes an exit code."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import FIXTURES, CliRunner


@pytest.mark.parametrize("args", [
    ["models"], ["usage"], ["logs", "--json"], ["config", "show"], ["domain", "hello"], ["--help"],
    ["export", "--csv"], ["budget", "show", "alice"],
], ids=["rich-table", "usage", "json", "config", "domain", "help", "csv", "budget"])
def test_a_reader_that_left_is_exit_0_and_no_message(cli: CliRunner, args: list[str]) -> None:
    # `cascade models | head -0`: typer turns the EPIPE into sys.exit(1) and rich into
    # SystemExit(1), so every such pipe exited 1 (errors.md: a reader that left is 0)
    assert cli("import", str(FIXTURES / "history_bom_crlf.csv")).code == 0  # a ledger with rows
    assert cli("budget", "set", "alice", "--daily", "5").code == 0
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", "cascadeflow_cli", *args], cwd=cli.cwd, env=cli.env(),
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (0, "")
