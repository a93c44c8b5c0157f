"""`cascade export` and `cascade import` end to end, through the real command."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cascadeflow_cli.ledger.export import COLUMN_NAMES
from tests.cli.support import rows, stderr_lines
from tests.conftest import FIXTURES, CliRunner, assert_one_error_line
from tests.ledger.test_export import make_ledger

SAMPLE = Path(__file__).parents[2] / "sample_data" / "history.csv"


@pytest.fixture
def filled(tmp_path: Path) -> CliRunner:
    """A ledger with the sample requests of the export unit tests (no config needed)."""
    make_ledger(tmp_path / "ledger.db").close()
    return CliRunner(tmp_path, None, tmp_path / "ledger.db")


def test_csv_to_stdout_is_the_default(filled: CliRunner) -> None:
    proc = subprocess.run([sys.executable, "-m", "cascadeflow_cli", "export"], cwd=filled.cwd,
                          env=filled.env(), capture_output=True, timeout=60)  # bytes: CRLF intact
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(",".join(COLUMN_NAMES).encode() + b"\r\n")
    assert proc.stdout.count(b"\r\n") == 7  # header and 6 rows; a line break inside text stays
    text = proc.stdout.decode("utf-8")
    assert len(list(csv.DictReader(io.StringIO(text, newline="")))) == 6
    assert stderr_lines(proc.stderr.decode()) == ["exported 6 rows"]


@pytest.mark.parametrize(("args", "check"), [
    (["--json"], lambda text: len(json.loads(text)) == 6),
    (["--jsonl"], lambda text: len(text.splitlines()) == 6),
    (["--output", "ledger.jsonl"], None),
])
def test_formats(filled: CliRunner, args: list[str], check: object) -> None:
    run = filled("export", *args)
    assert run.code == 0, run.stderr
    if check is None:  # the extension chose JSONL
        text = (filled.cwd / "ledger.jsonl").read_text(encoding="utf-8")
        assert all(json.loads(line)["request_id"] for line in text.splitlines())
        assert run.stdout == "" and "to ledger.jsonl" in run.stderr
    else:
        assert check(run.stdout)  # type: ignore[operator]


def test_filters_and_bom(filled: CliRunner) -> None:
    run = filled("export", "--csv", "--user", "alice", "--model", "big", "--bom", "-o", "big.csv")
    assert run.code == 0, run.stderr
    data = (filled.cwd / "big.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbfid,request_id,")
    assert [r["id"] for r in csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""))] == ["r2-1"]
    run = filled("export", "--since", "2026-11-02", "--jsonl")
    assert [json.loads(line)["request_id"] for line in run.stdout.splitlines()] == ["r4", "r5"]
    run = filled("export", "--until", "2026-11-01", "--jsonl")  # a date: that whole day
    assert {json.loads(line)["request_id"] for line in run.stdout.splitlines()} == {"r1", "r2", "r3"}


@pytest.mark.parametrize(("args", "message"), [
    (["--csv", "--json"], "choose one of --csv, --json, --jsonl"),
    (["--since", "last tuesday"], "not a date: 'last tuesday'"),
    (["--since", "2026-11-02", "--until", "2026-11-01T00:00:00"], "--since 2026-11-02 is not before --until"),
    (["-o", "no/such/dir/out.csv"], "cannot write"),
])
def test_bad_export_arguments_are_one_line(filled: CliRunner, args: list[str], message: str) -> None:
    run = filled("export", *args)
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert message in run.stderr
    assert not list(filled.cwd.glob("**/.*.partial"))


@pytest.mark.parametrize("command", [["usage"], ["export", "--json"], ["anomalies"]])
def test_since_after_until_is_one_message_everywhere(filled: CliRunner, command: list[str]) -> None:
    # usage and export said "--until X is not after --since Y", anomalies "--since Y is after --until X"
    run = filled(*command, "--since", "2026-11-02", "--until", "2026-11-01")
    assert run.code == 1, run.stderr
    assert run.stderr == ("error: --since 2026-11-02 is not before --until 2026-11-01: "
                          "nothing lies between them\n")


def test_import_then_again_then_round_trip(tmp_path: Path) -> None:
    first = CliRunner(tmp_path, None, tmp_path / "a.db")
    run = first("import", str(FIXTURES / "history_bom_crlf.csv"), "--json")
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout) == {
        "file": str(FIXTURES / "history_bom_crlf.csv"), "format": "csv", "rows": 5, "requests": 5,
        "calls": 5, "imported_requests": 5, "imported_calls": 5, "skipped_requests": 0,
        "ignored_columns": ["notes"]}
    assert "note: ignored unknown column(s): notes" in run.stderr
    again = first("import", str(FIXTURES / "history_bom_crlf.csv"))
    assert again.code == 0 and "imported 0 requests (0 calls)" in again.stderr
    assert "5 already in the ledger" in again.stderr
    assert first("export", "-o", "one.csv").code == 0
    second = CliRunner(tmp_path, None, tmp_path / "b.db")
    assert second("import", "one.csv").code == 0
    assert second("export", "-o", "two.csv").code == 0
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()


def test_a_bad_row_imports_nothing(tmp_path: Path) -> None:
    runner = CliRunner(tmp_path, None, tmp_path / "ledger.db")
    run = runner("import", str(FIXTURES / "history_bad_row.csv"))
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert f"{FIXTURES / 'history_bad_row.csv'}:4: cost is negative: -0.5" in run.stderr
    assert rows(runner.db, "requests") == []


@pytest.mark.parametrize(("args", "message"), [
    (["nothing-here.csv"], "nothing-here.csv: no such file"),
    ([".", "--format", "csv"], ".: is a directory"),
    (["x.csv", "--format", "xml"], "--format must be one of csv, json, jsonl"),
])
def test_bad_import_arguments_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "x.csv").write_text("timestamp,user,model,cost\n", encoding="utf-8")
    run = CliRunner(tmp_path, None, tmp_path / "ledger.db")("import", *args)
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert message in run.stderr


def test_the_sample_history_round_trips(tmp_path: Path) -> None:
    """sample_data/history.csv (a subset of our columns) in; the full export out and back.
    The first 3,000 lines keep it quick; test_usage_cmd imports the whole file."""
    head = tmp_path / "head.csv"
    with SAMPLE.open(encoding="utf-8") as fh:
        head.write_text("".join(line for _, line in zip(range(3000), fh, strict=False)), encoding="utf-8")
    first = CliRunner(tmp_path, None, tmp_path / "a.db")
    run = first("import", str(head))
    assert run.code == 0, run.stderr
    assert "imported 2," in run.stderr and "(2,999 calls)" in run.stderr
    assert first("export", "--jsonl", "-o", "one.jsonl").code == 0
    second = CliRunner(tmp_path, None, tmp_path / "b.db")
    assert second("import", "one.jsonl").code == 0
    assert second("export", "--jsonl", "-o", "two.jsonl").code == 0
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()


def test_plain_rows_from_two_systems_with_the_same_ids_keep_every_call(tmp_path: Path) -> None:
    """hostile-4: a plain row's own id ("1", "2": another system's) became the call's id,
    so a second system's rows 1 and 2 were imported as requests with their cost and no
    call ("imported 2 requests (0 calls)"): missing from `usage --by model` and export."""
    cli = CliRunner(tmp_path, None, tmp_path / "ledger.db")
    head = "id,timestamp,user,model,cost\n"
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(head + "1,2026-01-01T10:00:00Z,alice,big,0.5\n2,2026-01-02T10:00:00Z,alice,big,0.5\n")
    b.write_text(head + "1,2026-02-01T10:00:00Z,bob,big,7\n2,2026-02-02T10:00:00Z,bob,big,7\n")
    assert cli("import", str(a)).code == 0
    run = cli("import", str(b))
    assert run.code == 0 and "(2 calls)" in run.stderr, run.stderr
    assert len(rows(cli.db, "requests")) == len(rows(cli.db, "calls")) == 4
    by_model = cli("usage", "--by", "model", "--json").json()
    assert by_model["total"]["cost"] == pytest.approx(15.0)  # type: ignore[index]
    assert cli("import", str(b)).code == 0 and len(rows(cli.db, "calls")) == 4  # still idempotent


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("dup.jsonl", '{"id": "x", "timestamp": "2026-01-01", "user": "a", "model": "m", "cost": 1}\n'
         '{"id": "x", "timestamp": "2026-01-02", "user": "a", "model": "m", "cost": 2}\n', "dup.jsonl:2"),
        ("deep.json", "[" * 100_000 + "]" * 100_000, "deep.json:1"),
        ("deep.jsonl", "[" * 100_000 + "]" * 100_000 + "\n", "deep.jsonl:1"),
        # a key twice: $5 was imported (the last wins in Python; the first in other readers)
        ("twice.jsonl", '{"timestamp": "2026-01-01", "user": "a", "model": "m", "cost": 0.01, "cost": 5}\n',
         "twice.jsonl:1: not valid JSON (key 'cost' appears twice in one object)"),
        ("twice.json", '[{"timestamp": "2026-01-01", "user": "a", "model": "m", "user": "b", "cost": 1}]',
         "key 'user' appears twice"),
        # read whole (not one object a line): the repeated key's own line, not "line 1"
        ("twice-pretty.json", '[\n  {\n    "timestamp": "2026-01-01",\n    "user": "a",\n    "model": "m",\n'
         '    "cost": 1\n  },\n  {\n    "timestamp": "2026-01-02",\n    "user": "a",\n    "model": "m",\n'
         '    "cost": 0.01,\n    "cost": 5\n  }\n]\n',
         "twice-pretty.json:13: not valid JSON (key 'cost' appears twice in one object)"),
    ],
    ids=["id-twice", "deep-json", "deep-jsonl", "key-twice-jsonl", "key-twice-json", "key-twice-pretty-json"],
)
def test_a_hostile_file_is_one_error_line_and_imports_nothing(
    tmp_path: Path, name: str, text: str, where: str
) -> None:
    """hostile-4: 100,000 nested brackets came out as "unexpected RecursionError"."""
    cli = CliRunner(tmp_path, None, tmp_path / "ledger.db")
    (tmp_path / name).write_text(text, encoding="utf-8")
    run = cli("import", str(tmp_path / name))
    assert run.code == 1, run.stderr
    assert_one_error_line(run.stderr)
    assert where in run.stderr and "unexpected" not in run.stderr
    assert rows(cli.db, "requests") == []


def test_export_to_a_fifo_or_device_writes_into_it_and_keeps_it(filled: CliRunner) -> None:
    """`--output` naming a FIFO (or, as root, a device such as /dev/null) is written into,
    not replaced by a regular file: the temporary-file-then-rename of a regular output
    replaced the node itself (root's `--output /dev/null` destroyed /dev/null)."""
    import os
    import stat

    fifo = filled.cwd / "pipe.csv"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader is there: the writer's open won't block
    try:
        run = filled("export", "--output", str(fifo))
        assert run.code == 0, run.stderr
        assert stat.S_ISFIFO(os.stat(fifo).st_mode)
        data = os.read(reader, 1 << 16)
    finally:
        os.close(reader)
    assert data.startswith(b"id,request_id,") and data.count(b"\r\n") == 7
    assert not list(filled.cwd.glob(".pipe.csv*"))
    if os.geteuid() == 0:  # a character device of our own: a copy of /dev/null
        null = filled.cwd / "null.csv"
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        run = filled("export", "--output", str(null))
        assert run.code == 0, run.stderr
        assert stat.S_ISCHR(os.stat(null).st_mode)


def test_export_through_a_symlink_replaces_its_target_not_the_link(filled: CliRunner) -> None:
    target = filled.cwd / "backups" / "2026.csv"
    target.parent.mkdir()
    target.write_text("old\n")
    link = filled.cwd / "latest.csv"
    link.symlink_to(target)
    run = filled("export", "--output", str(link))
    assert run.code == 0, run.stderr
    assert link.is_symlink()
    assert target.read_bytes().startswith(b"id,request_id,")


def test_export_to_a_full_device_is_one_error_line(filled: CliRunner) -> None:
    import os
    import stat

    if os.geteuid() != 0:
        pytest.skip("making a copy of /dev/full needs root (mknod)")
    full = filled.cwd / "full.csv"
    os.mknod(full, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    run = filled("export", "--output", str(full))
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert "No space left on device" in run.stderr and "unexpected" not in run.stderr
    assert stat.S_ISCHR(os.stat(full).st_mode)


def test_a_nul_character_in_an_answer_survives_the_csv_round_trip(
    cli: CliRunner, server: object, tmp_path: Path
) -> None:
    """A provider's answer holding U+0000 (JSON's \\u0000): SQLite's printf('%s') stopped
    at it, so the CSV export cut the field there and left its opening quote unclosed,
    reporting success; importing that export failed ('expected 37 fields, found 53')."""
    from cascadeflow_cli.replay.server import ModelBehavior

    answer = "Paris is the capital\x00 of France, and\u2028its largest city, \"by far\"."
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=answer))  # type: ignore[attr-defined]
    assert cli("ask", "What is the capital of France?", OPENAI_API_KEY="sk-test").code == 0
    first = tmp_path / "first.csv"
    assert cli("export", "--output", str(first)).code == 0
    exported = list(csv.DictReader(io.StringIO(first.read_text(encoding="utf-8"), newline="")))
    assert [row["answer"] for row in exported] == [answer]
    again = CliRunner(tmp_path, None, tmp_path / "again.db")
    run = again("import", str(first))
    assert run.code == 0, run.stderr
    second = tmp_path / "second.csv"
    assert again("export", "--output", str(second)).code == 0
    assert second.read_bytes() == first.read_bytes()


def test_formula_cells_are_defused_in_csv_and_round_trip(tmp_path: Path) -> None:
    """A user '=HYPERLINK(...)' or a query '=cmd|...' ran as a formula in the spreadsheet
    that opened `cascade export --csv`. Such a text cell starts with ' (shown as text), and
    `import` takes it off again: the round trip is exact, JSON shows them as stored."""
    history = tmp_path / "history.jsonl"
    names = ["=HYPERLINK(\"http://evil\",\"x\")", "+cmd", "-bob", "@sum", "'=already", "plain"]
    history.write_text("".join(json.dumps({"timestamp": f"2026-11-0{i + 1}T10:00:00Z", "user": name,
                                           "model": "m", "cost": 0.01, "query": f"=cmd|' /C calc'!A{i}"})
                               + "\n" for i, name in enumerate(names)), encoding="utf-8")
    first = CliRunner(tmp_path, None, tmp_path / "a.db")
    assert first("import", str(history)).code == 0
    assert first("export", "-o", "one.csv").code == 0
    table = list(csv.DictReader(io.StringIO((tmp_path / "one.csv").read_text(encoding="utf-8"), newline="")))
    assert [r["user"] for r in table] == ["'=HYPERLINK(\"http://evil\",\"x\")", "'+cmd", "'-bob", "'@sum",
                                         "''=already", "plain"]
    assert all(r["query"].startswith("'=cmd|") for r in table)
    assert [r["cost"] for r in table] == ["0.010000000"] * 6  # numbers are left alone
    second = CliRunner(tmp_path, None, tmp_path / "b.db")
    assert second("import", "one.csv").code == 0
    assert [r["user"] for r in json.loads(second("export", "--json").stdout)] == names
    assert second("export", "-o", "two.csv").code == 0
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()
