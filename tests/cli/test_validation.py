"""Values that used to be accepted and silently misread: an unknown domain, an export
file name of another format, a config written where it is not read (issue 11, item 12)."""

from __future__ import annotations

import json
from pathlib import Path

from cascadeflow_cli.config import known_domains, parse_config
from cascadeflow_cli.replay.server import ReplayServer
from tests.cli.support import QUERY, rows
from tests.conftest import CliRunner, assert_one_error_line, config_text


def test_an_unknown_domain_is_refused_before_any_call(cli: CliRunner, server: ReplayServer) -> None:
    run = cli("ask", QUERY, "--domain", "astrology")
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert "unknown domain 'astrology' (known: code, math" in run.stderr
    assert server.request_count() == 0 and rows(cli.db, "requests") == []
    assert cli("ask", QUERY, "--domain", "math").code == 0  # a built-in one is fine


def test_configured_domains_are_known_too(tmp_path: Path, server: ReplayServer) -> None:
    config = tmp_path / "c.toml"
    config.write_text(config_text(server.base_url, extra='[domains]\nastrology = ["mini"]\n'), "utf-8")
    assert "astrology" in known_domains(parse_config(config.read_text("utf-8"), config))
    cli = CliRunner(tmp_path, config, tmp_path / "l.db")
    run = cli("ask", QUERY, "--domain", "astrology", "--json")
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["domain"] == "astrology"


def test_a_batch_row_with_an_unknown_domain_is_that_row_s_error(
    cli: CliRunner, server: ReplayServer, tmp_path: Path
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "query": "hi", "domain": "astrology"}\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    cli("batch", str(src), "--output", str(out))
    line = json.loads(out.read_text(encoding="utf-8"))
    assert line["id"] == "a" and line["error"].startswith("unknown domain 'astrology'")
    assert server.request_count() == 0


def test_export_refuses_a_file_name_of_a_format_it_does_not_write(cli: CliRunner, tmp_path: Path) -> None:
    assert cli("ask", QUERY).code == 0
    for args in (["-o", str(tmp_path / "x.xlsx")], ["--json", "-o", str(tmp_path / "x.csv")]):
        run = cli("export", *args)
        assert run.code == 1, run.stderr
        assert_one_error_line(run.stderr)
    assert not list(tmp_path.glob("x.*"))
    assert cli("export", "-o", str(tmp_path / "x.jsonl")).code == 0  # the name picks the format
    first = (tmp_path / "x.jsonl").read_text(encoding="utf-8").splitlines()[0]
    assert json.loads(first)["user"] == "default"
    assert cli("export", "--csv", "-o", str(tmp_path / "x.txt")).code == 0  # a flag names it


def test_config_init_says_when_a_local_file_takes_precedence(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "cascadeflow.toml").write_text("", encoding="utf-8")
    cli = CliRunner(project, None, tmp_path / "l.db")
    run = cli("config", "init")
    assert run.code == 0, run.stderr
    written = Path(run.stdout.strip())
    assert written.is_file() and written != project / "cascadeflow.toml"
    assert f"commands run here read {project / 'cascadeflow.toml'}, not this file" in run.stderr
    here = cli("config", "init", "--path", "cascadeflow.toml", "--force")
    assert here.code == 0 and here.stderr == ""  # the file in use: nothing to warn about
    assert "[cascade]" in (project / "cascadeflow.toml").read_text(encoding="utf-8")


def test_config_init_writes_where_cascade_config_points(tmp_path: Path) -> None:
    target = tmp_path / "env.toml"
    cli = CliRunner(tmp_path, None, tmp_path / "l.db")
    run = cli("config", "init", CASCADE_CONFIG=str(target))
    assert run.code == 0 and Path(run.stdout.strip()) == target and target.is_file()


def test_a_local_time_that_dst_skips_is_refused(tmp_path: Path, server: ReplayServer) -> None:
    config = tmp_path / "c.toml"
    config.write_text(config_text(server.base_url, extra='[ledger]\ntimezone = "Europe/Berlin"\n'), "utf-8")
    cli = CliRunner(tmp_path, config, tmp_path / "l.db")
    assert cli("ask", QUERY).code == 0
    for args in (["logs", "--since", "2026-03-29T02:30"], ["usage", "--until", "2026-03-29T02:30"]):
        run = cli(*args)
        assert run.code == 1, run.stderr  # a usage error (CLI.md: exit 1)
        assert_one_error_line(run.stderr)
        assert "no such local time: '2026-03-29T02:30' in Europe/Berlin" in run.stderr
    assert cli("logs", "--since", "2026-10-25T02:30").code == 0  # repeated, not skipped: taken


def test_a_user_name_with_a_bidi_control_is_refused(
    cli: CliRunner, server: ReplayServer, tmp_path: Path
) -> None:
    spoof = "admin\u202enimda"  # shows as "adminadmin": another user's name
    for args in (["ask", QUERY, "--user", spoof], ["budget", "set", spoof, "--daily", "1"]):
        run = cli(*args)
        assert run.code == 1, run.stderr
        assert_one_error_line(run.stderr)
        assert "bidirectional control character (U+202E at character 6)" in run.stderr
    history = tmp_path / "h.csv"
    history.write_text(f"timestamp,user,model,cost\n2026-05-01T10:00Z,{spoof},mini,0.01\n", "utf-8")
    run = cli("import", str(history))
    assert run.code == 1 and "U+202E" in run.stderr, run.stderr
    assert server.request_count() == 0 and rows(cli.db, "requests") == []
    assert cli("ask", QUERY, "--user", "zoë").code == 0  # other non-ASCII is a fine name


def test_a_user_name_with_an_invisible_format_character_is_refused(
    cli: CliRunner, server: ReplayServer, tmp_path: Path
) -> None:
    # "al\u200bice" shows as "alice" in `usage`: another user's name and budget.
    for spoof, code, at in (
        ("al\u200bice", "U+200B", 3),
        ("al\u200cice", "U+200C", 3),
        ("al\u200dice", "U+200D", 3),
        ("\u2060alice", "U+2060", 1),
        ("alice\ufeff", "U+FEFF", 6),
        ("ali\u00adce", "U+00AD", 4),  # soft hyphen: Cf too
    ):
        for args in (["ask", QUERY, "--user", spoof], ["budget", "set", spoof, "--daily", "1"]):
            run = cli(*args)
            assert run.code == 1, run.stderr
            assert_one_error_line(run.stderr)
            assert f"invisible format character ({code} at character {at})" in run.stderr
    history = tmp_path / "h.csv"
    history.write_text("timestamp,user,model,cost\n2026-05-01T10:00Z,al\u200bice,mini,0.01\n", "utf-8")
    run = cli("import", str(history))
    assert run.code == 1 and "U+200B" in run.stderr, run.stderr
    assert server.request_count() == 0 and rows(cli.db, "requests") == []
    # Names whose format characters are part of a visible emoji stay fine, as do other scripts.
    for name in ("zoë", "李", "👍🏽", "👩\u200d💻", "🏳\ufe0f\u200d🌈", "🏴" + "".join(
        chr(0xE0000 + ord(c)) for c in "gbsct"
    ) + "\U000e007f"):
        run = cli("ask", QUERY, "--user", name)
        assert run.code == 0, (name, run.stderr)
    assert len(rows(cli.db, "requests")) == 6


def test_a_user_name_with_a_control_character_is_refused(
    cli: CliRunner, server: ReplayServer, tmp_path: Path
) -> None:
    """"alice\\r" prints as "alice" on a terminal, "a\\nb" as two lines, ESC starts a
    terminal escape: each made another user's name and budget; a tab or newline in a
    name is never meant either."""
    for spoof, code, at in (("alice\r", "U+000D", 6), ("a\nb", "U+000A", 2), ("a\tb", "U+0009", 2),
                            ("\x1b[31malice", "U+001B", 1), ("ali\x85ce", "U+0085", 4),
                            ("alice\x7f", "U+007F", 6)):
        for args in (["ask", QUERY, "--user", spoof], ["budget", "set", spoof, "--daily", "1"]):
            run = cli(*args)
            assert run.code == 1, run.stderr
            assert_one_error_line(run.stderr)
            assert f"control character ({code} at character {at})" in run.stderr, run.stderr
    history = tmp_path / "h.csv"
    history.write_text('timestamp,user,model,cost\n2026-05-01T10:00Z,"ali\rce",mini,0.01\n', "utf-8")
    run = cli("import", str(history))
    assert run.code == 1 and "U+000D" in run.stderr, run.stderr
    assert server.request_count() == 0 and rows(cli.db, "requests") == []
    assert rows(cli.db, "budgets") == []


def test_a_number_option_refuses_nan_and_infinity(cli: CliRunner) -> None:
    """NaN passes every range check (each comparison is false): `--confidence nan`
    reached the forecaster as `unexpected ValueError`, `--min-change nan` reported nothing."""
    for args in (["forecast", "--confidence", "nan"], ["anomalies", "--min-change", "nan"],
                 ["anomalies", "--min-change", "inf"], ["quality", "check", "--query", "q",
                                                        "--response", "r", "--threshold", "nan"],
                 ["serve", "--grace", "nan"], ["calibrate", "x.jsonl", "--target-quality", "NaN"]):
        run = cli(*args)
        assert run.code == 1, (args, run.stderr)
        assert_one_error_line(run.stderr)
        assert "unexpected" not in run.stderr
        assert "must be a finite number" in run.stderr or "within" in run.stderr, run.stderr


def test_every_number_option_says_its_range_in_one_rule(cli: CliRunner) -> None:
    """click's own lines read like click ("Invalid value for '--horizon': 100000 is not in
    the range 1<=x<=366.", "'10.5' is not a valid int range."): one rule for every number
    option now, the range in words and the value as typed; the help still shows the range."""
    horizon = "--horizon must be a whole number from 1 to 366, got"
    for args, line in (
            (["forecast", "--horizon", "100000"], f"{horizon} 100000"),
            (["forecast", "--horizon", "0"], f"{horizon} 0"),
            (["forecast", "--horizon", "abc"], f"{horizon} 'abc'"),
            (["ask", "q", "--max-tokens", "10.5"], "--max-tokens must be a whole number from 1 to "),
            (["forecast", "--confidence", "2"], "--confidence must be a number from 0.5 to 0.99, got 2"),
            (["anomalies", "--min-change", "-1"], "--min-change must be a number >= 0, got -1"),
            (["logs", "-n", "-1"], "--count must be a whole number >= 0, got -1"),
            (["serve", "--port", "70000"], "--port must be a whole number from 0 to 65,535, got 70000")):
        run = cli(*args)
        assert run.code == 1, (args, run.stderr)
        assert_one_error_line(run.stderr)
        assert line in run.stderr and "Invalid value" not in run.stderr, run.stderr
    assert "1<=x<=366" in cli("forecast", "--help").stdout


def test_logs_with_a_count_past_sqlite_s_integers_shows_everything(
    cli: CliRunner, server: ReplayServer
) -> None:
    """`-n 99999999999999999999` was sent to SQLite as a LIMIT it cannot hold and came back
    as 'datatype mismatch (the file is damaged: restore a backup...)' about a sound ledger."""
    assert cli("ask", QUERY).code == 0
    run = cli("logs", "-n", "99999999999999999999", "--json")
    assert run.code == 0, run.stderr
    assert len(run.json()) == 1  # type: ignore[arg-type]


def test_a_chain_naming_a_model_twice_is_refused_before_any_call(
    cli: CliRunner, server: ReplayServer, tmp_path: Path
) -> None:
    """`--models mini,mini` (or `[cascade] models = ["mini", "mini"]`) escalated from mini
    to mini: the same prompt paid for twice, for the same refused answer."""
    run = cli("ask", QUERY, "--models", "mini,big,mini")
    assert run.code == 1, run.stderr
    assert_one_error_line(run.stderr)
    assert "names model 'mini' twice" in run.stderr
    config = tmp_path / "dup.toml"
    config.write_text(config_text(server.base_url, chain='["mini", "mini"]'))
    run = cli("ask", QUERY, CASCADE_CONFIG=str(config))
    assert run.code == 1, run.stderr
    assert_one_error_line(run.stderr)
    assert "cascade.models: names model 'mini' twice" in run.stderr
    assert server.request_count() == 0 and rows(cli.db, "requests") == []
