"""Undecodable bytes in arguments, the environment, stdin and input files: one line naming
the place, exit 1, and nothing reserved, called or recorded (issue 11, item 6)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cascadeflow_cli.replay.server import ReplayServer
from tests.cli.support import rows
from tests.conftest import CliRunner, assert_one_error_line

BAD = "caf\udce9"  # how Python hands over the bytes b"caf\xe9" from argv or the environment


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["ask", BAD], "'query'"),
        (["ask", "hi", "--user", BAD], "'--user'"),
        (["ask", "hi", "--domain", BAD], "'--domain'"),
        (["ask", "hi", "--system", BAD], "'--system'"),
        (["ask", "hi", "--models", BAD], "'--models'"),
        (["budget", "set", BAD, "--daily", "1"], "'user'"),
        (["budget", "show", BAD], "'user'"),
        (["logs", "--user", BAD], "'--user'"),
        (["usage", "--since", BAD], "'--since'"),
        (["export", "--user", BAD], "'--user'"),
    ],
)
def test_a_non_utf8_argument_is_named_before_anything_runs(
    cli: CliRunner, server: ReplayServer, args: list[str], names: str
) -> None:
    run = cli(*args)
    assert run.code == 1, run.stderr
    assert_one_error_line(run.stderr)
    assert names in run.stderr and "not valid UTF-8 text (byte 0xe9" in run.stderr
    assert "unexpected" not in run.stderr
    assert server.request_count() == 0
    assert not cli.db.exists()  # refused at parsing: the ledger was not even opened


def test_a_non_utf8_user_in_the_environment_is_named(cli: CliRunner, server: ReplayServer) -> None:
    run = cli("ask", "hi", CASCADE_USER=BAD)
    assert run.code == 1 and "$CASCADE_USER is not valid UTF-8 text" in run.stderr
    assert_one_error_line(run.stderr)
    assert server.request_count() == 0 and rows(cli.db, "requests") == []


def test_a_non_utf8_query_on_stdin_is_refused_before_the_call(cli: CliRunner, server: ReplayServer) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cascadeflow_cli", "ask", "-"],
        input=b"caf\xe9 ?",
        capture_output=True,
        env=cli.env(),
        cwd=cli.cwd,
        timeout=60,
    )
    stderr = proc.stderr.decode()
    assert proc.returncode == 1, stderr
    assert_one_error_line(stderr)
    assert "the query on stdin is not valid UTF-8 text (byte 0xe9 on line 1)" in stderr
    assert server.request_count() == 0 and rows(cli.db, "requests") == []


def test_a_lone_surrogate_in_a_batch_row_is_that_row_s_error(
    cli: CliRunner, server: ReplayServer, tmp_path: Path
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        '{"id": "a", "query": "caf\\udce9"}\n{"id": "b", "user": "\\ud800x", "query": "hi"}\n',
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    run = cli("batch", str(src), "--output", str(out))
    assert "unexpected" not in run.stderr and "Traceback" not in run.stderr
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["error"]) for r in lines] == [
        ("a", "line 1: 'query' is not valid UTF-8 text (byte 0xe9 at character 4)"),
        ("b", "line 2: 'user' is not valid UTF-8 text (lone surrogate \\ud800 at character 1)"),
    ]
    assert server.request_count() == 0 and rows(cli.db, "requests") == []


def test_a_lone_surrogate_in_an_import_row_names_file_and_line(cli: CliRunner, tmp_path: Path) -> None:
    src = tmp_path / "h.jsonl"
    src.write_text(
        '{"timestamp": "2026-01-01", "user": "a", "model": "m", "cost": 1}\n'
        '{"timestamp": "2026-01-01", "user": "\\udce9", "model": "m", "cost": 1}\n',
        encoding="utf-8",
    )
    run = cli("import", str(src))
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert f"{src}:2: user is not valid UTF-8 text" in run.stderr
    assert rows(cli.db, "requests") == []


def test_every_text_parameter_of_every_command_is_checked() -> None:
    """The guard walks the whole tree: a command added later is covered without a word."""
    from cascadeflow_cli.cli.app import _command

    def walk(command: object) -> list[object]:
        subs = getattr(command, "commands", {}).values()
        return [*getattr(command, "params", []), *(p for s in subs for p in walk(s))]

    text_params = [
        p
        for p in walk(_command())
        if str(getattr(p, "type", "")) == "STRING"  # click's name for a str parameter's type
    ]
    assert len(text_params) > 20
    assert all(getattr(p.callback, "__cascade_text_check__", False) for p in text_params)


def test_an_ascii_locale_takes_utf8_arguments_and_prints_them(tmp_path: Path) -> None:
    """LC_ALL=C with UTF-8 mode off: Python hands over each non-ASCII byte of argv as a lone
    surrogate, so `budget set Zoë` read 'not valid UTF-8 text (byte 0xc3 ...)', and stdout
    was ASCII: `budget list` of such a name was 'unexpected UnicodeEncodeError'."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LC_ALL": "C", "PYTHONUTF8": "0",
           "CASCADE_CONFIG": os.devnull, "CASCADE_DB": str(tmp_path / "l.db")}

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "cascadeflow_cli", *args], env=env, cwd=tmp_path,
                              capture_output=True, timeout=120)

    made = run("budget", "set", "Zoë", "--daily", "1")
    assert made.returncode == 0, made.stderr
    assert "budget for Zoë".encode() in made.stderr  # stderr was ASCII: 'budget for Zo\\xeb'
    listed = run("budget", "list")
    assert listed.returncode == 0, listed.stderr
    assert "Zoë".encode() in listed.stdout
    as_json = run("budget", "list", "--json")
    assert json.loads(as_json.stdout.decode("utf-8"))[0]["user"] == "Zoë"
    refused = run("budget", "set", "caf\udce9", "--daily", "1")  # bytes that are not UTF-8: as before
    assert refused.returncode == 1 and b"not valid UTF-8 text (byte 0xe9" in refused.stderr
