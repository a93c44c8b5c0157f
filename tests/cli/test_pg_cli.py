"""The `cascade` command on a PostgreSQL ledger, end to end: ask, logs, budgets, usage,
export, and `cascade ledger copy` to a SQLite file and back with identical exports.

In-process, through the real entry point (``cli.app.main``, what ``python -m
cascadeflow_cli`` runs): a dozen commands cost one Python start-up, not twelve. The
process boundary itself is tested elsewhere (tests/cli/test_pg_errors.py)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliRunner, Run

pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[dev]'")


@pytest.fixture
def cascade(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Run]:
    """``cli``'s config and ledger, but run in this process."""
    from cascadeflow_cli.cli.app import main

    def run(*args: str, **env: str) -> Run:
        # like a process's: text over bytes (export writes its bytes to sys.stdout.buffer)
        out, err = (io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True) for _ in "12")
        with monkeypatch.context() as m:
            m.chdir(cli.cwd)
            for name, value in {**cli.env(), **env}.items():
                m.setenv(name, value)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    main(list(args))
                    code = 0
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        return Run(code, *(s.buffer.getvalue().decode() for s in (out, err)))  # type: ignore[attr-defined]

    return run


def test_the_cli_on_postgresql_and_a_copy_to_sqlite(cascade: Callable[..., Run], pg_ledger_url: str,
                                                    tmp_path: Path) -> None:
    cli, pg_url = cascade, pg_ledger_url
    env = {"CASCADE_DB": pg_url}
    for user in ("alice", "bob"):
        run = cli("ask", "What is the capital of France?", "--user", user, "--json", **env)
        assert run.code == 0, run.stderr
    assert cli("budget", "set", "alice", "--daily", "5", **env).code == 0
    shown = cli("budget", "show", "alice", "--json", **env)
    assert shown.code == 0, shown.stderr
    daily = shown.json()["windows"][0]  # type: ignore[index]
    assert daily["window"] == "daily" and daily["spent"] > 0
    logs = cli("logs", "--json", "-n", "0", **env).json()
    assert sorted(r["user"] for r in logs) == ["alice", "bob"]  # type: ignore[union-attr, index]
    usage = cli("usage", "--by", "user", "--json", **env)
    assert usage.code == 0, usage.stderr
    exported = cli("export", "--csv", **env)
    assert exported.code == 0 and exported.stdout.count("\n") >= 3, exported.stderr
    lite = tmp_path / "copy.db"
    copied = cli("ledger", "copy", pg_url, str(lite), "--json")
    assert copied.code == 0, copied.stderr
    assert copied.json()["requests"] == 2 and "***" not in copied.stdout  # type: ignore[index]
    assert cli("export", "--csv", "--db", str(lite)).stdout == exported.stdout
    again = cli("ledger", "copy", str(lite), pg_url, "--json")
    assert again.code == 0 and again.json()["requests"] == 0  # type: ignore[index]
    assert cli("ledger", "copy", str(lite), str(lite)).code == 1
