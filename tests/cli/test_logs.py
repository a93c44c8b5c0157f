"""`cascade logs` end to end, over a ledger filled by real `cascade ask` runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.cli.support import ASK_KEYS, QUERY, rows, run_together, stderr_lines
from tests.conftest import GOOD_ANSWER, CliRunner, assert_one_error_line, config_text

ASKS = [("alice", QUERY), ("bob", "Name the capital city of France."),
        ("alice", "Which city is the capital of France?")]


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CliRunner, list[Any]]]:
    """One ledger for the whole module (the tests only read it): three asks, oldest first,
    and their `ask --json` objects."""
    tmp = tmp_path_factory.mktemp("logs")
    home = {"HOME": str(tmp / "home"), "XDG_CONFIG_HOME": str(tmp / "home" / ".config"),
            "XDG_DATA_HOME": str(tmp / "home" / ".local" / "share")}
    with ReplayServer() as server:
        server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
        config = tmp / "cascadeflow.toml"
        config.write_text(config_text(server.base_url), encoding="utf-8")
        runner = CliRunner(tmp, config, tmp / "ledger.db")
        results = []
        for user, query in ASKS:
            run = runner("ask", query, "--user", user, "--json", **home)
            assert run.code == 0, run.stderr
            results.append(run.json())
        yield runner, results


@pytest.fixture
def logs(filled: tuple[CliRunner, list[Any]]) -> CliRunner:
    return filled[0]


@pytest.fixture
def asked(filled: tuple[CliRunner, list[Any]]) -> list[dict[str, Any]]:
    return filled[1]


def test_n_1_shows_only_the_newest_request(logs: CliRunner, asked: list[dict[str, Any]]) -> None:
    run, as_json = run_together(logs, ["logs", "-n", "1"], ["logs", "-n", "1", "--json"],
                                COLUMNS="200")
    assert run.code == 0, run.stderr
    body = [line for line in run.stdout.splitlines() if "draft ok" in line]
    assert len(body) == 1
    assert "alice" in body[0] and ASKS[-1][1] in body[0]
    assert "bob" not in run.stdout and QUERY not in run.stdout

    newest = as_json.json()
    assert [r["request_id"] for r in newest] == [asked[-1]["request_id"]]  # type: ignore[union-attr]


def test_json_all_newest_first_shaped_like_ask(logs: CliRunner, asked: list[dict[str, Any]]) -> None:
    run = logs("logs", "-n", "0", "--json")
    assert run.code == 0, run.stderr
    logged = run.json()
    assert isinstance(logged, list) and len(logged) == len(ASKS)
    assert [r["request_id"] for r in logged] == [a["request_id"] for a in reversed(asked)]
    stamps = [r["timestamp"] for r in logged]
    assert stamps == sorted(stamps, reverse=True) and len(set(stamps)) == len(stamps)
    for entry, original in zip(logged, reversed(asked), strict=True):
        assert ASK_KEYS | {"timestamp"} <= set(entry)
        # the ledger gives back exactly what `ask --json` printed
        assert {k: entry[k] for k in original} == original
    assert len(rows(logs.db, "requests")) == len(ASKS)


def test_user_filter(logs: CliRunner, asked: list[dict[str, Any]]) -> None:
    for_alice, nobody = run_together(logs, ["logs", "-n", "0", "--user", "alice", "--json"],
                                     ["logs", "--user", "zed"])
    alice = for_alice.json()
    assert isinstance(alice, list)
    assert [r["request_id"] for r in alice] == [asked[2]["request_id"], asked[0]["request_id"]]
    assert {r["user"] for r in alice} == {"alice"}
    assert nobody.code == 0 and nobody.stdout == ""
    assert "no requests" in nobody.stderr


def test_since(logs: CliRunner, asked: list[dict[str, Any]]) -> None:
    future, past = run_together(logs, ["logs", "-n", "0", "--since", "2999-01-01", "--json"],
                                ["logs", "-n", "0", "--since", "2000-01-01T00:00:00Z", "--json"])
    assert future.code == 0, future.stderr
    assert future.json() == []
    assert past.code == 0, past.stderr
    assert [r["request_id"] for r in past.json()] == [  # type: ignore[union-attr]
        a["request_id"] for a in reversed(asked)]


def test_since_not_a_date(cli: CliRunner) -> None:
    run = cli("logs", "--since", "not-a-date")
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert "not-a-date" in run.stderr
    assert run.stdout == ""


def test_empty_ledger(cli: CliRunner) -> None:
    run, as_json = run_together(cli, ["logs"], ["logs", "--json"])
    assert run.code == 0
    assert run.stdout == ""
    [line] = stderr_lines(run.stderr)
    assert "no requests" in line and not line.startswith("error")
    assert as_json.code == 0 and as_json.json() == []


@pytest.mark.parametrize("color", ["", "1"], ids=["plain", "forced-color"])
def test_control_characters_from_the_ledger_cannot_drive_the_terminal(tmp_path: Path, color: str) -> None:
    """hostile-4: a user name and query holding ESC [2J (clear screen) and ESC ]0; (set the
    title), imported or sent by a serve client, reached the terminal of whoever ran
    `cascade logs` or `usage` raw. They are shown escaped; rich's own colours still work.
    (A user name with a control character is refused now, by import too; a ledger written
    before that may still hold one, so the name is put there directly.)"""
    import sqlite3

    history = tmp_path / "h.csv"
    history.write_text(
        'timestamp,user,model,cost,query\n2026-01-01T10:00:00Z,evil,big,0.5,"q\x1b]0;pwned\x07 x"\n',
        encoding="utf-8",
    )
    cli = CliRunner(tmp_path, None, tmp_path / "ledger.db")
    assert cli("import", str(history)).code == 0
    conn = sqlite3.connect(cli.db)
    with conn:
        conn.execute("update requests set user = 'ev\x1b[2Jil'")
    conn.close()
    env = {"FORCE_COLOR": "1", "COLUMNS": "120"} if color else {"NO_COLOR": "1", "COLUMNS": "120"}
    for args in (["logs"], ["usage", "--by", "user"]):
        run = cli(*args, **env)
        assert run.code == 0, run.stderr
        assert "\x1b[2J" not in run.stdout and "\x1b]0;" not in run.stdout and "\x07" not in run.stdout
        assert "ev\\x1b[2Jil" in run.stdout
        assert ("\x1b[" in run.stdout) == bool(color)  # rich's styling is untouched
