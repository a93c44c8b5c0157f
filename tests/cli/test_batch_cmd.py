"""`cascade batch` end to end: the real command in a subprocess against the loopback
server, killed with SIGKILL and SIGINT, resumed, on a full disk and a read-only ledger."""

from __future__ import annotations

import json
import os
import pty
import re
import resource
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from cascadeflow_cli.engine.batch import BatchProgress
from cascadeflow_cli.ledger import journal
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.cli.support import ASK_KEYS, immutable, read_terminal, rows, stderr_lines, wait_until
from tests.conftest import GOOD_ANSWER, CliRunner, assert_one_error_line


def write_queries(path: Path, n: int, *, extra: str = "") -> list[str]:
    ids = [f"q{i:03d}" for i in range(n)]
    lines = [json.dumps({"id": i, "query": f"What is the capital of France? ({i})",
                         **({"user": "bob"} if n % 2 else {})}) for i in ids]
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return ids


def output_ids(path: Path) -> Counter[str]:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return Counter(str(line["id"]) for line in lines)


def assert_exactly_once(ids: list[str], out: Path, db: Path) -> None:
    assert output_ids(out) == Counter(ids)
    requests = rows(db, "requests")
    per_row = Counter(str(r["external_id"]).split(":", 1)[1] for r in requests)
    assert per_row == Counter(ids)
    by_row = {str(r["external_id"]).split(":", 1)[1]: r for r in requests}
    for line in out.read_text(encoding="utf-8").splitlines():
        result = json.loads(line)
        row = by_row[result["id"]]
        if "error" in result:  # its call was in flight when the process died: recorded, not asked twice
            assert row["status"] == "interrupted" and row["cost_nusd"] > 0, row
            assert result["error"] == row["error"]
        else:
            assert row["id"] == result["request_id"]
    conn = sqlite3.connect(db)
    assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
    conn.close()


@pytest.fixture
def good(server: ReplayServer) -> ReplayServer:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    return server


def test_one_result_line_per_row(cli: CliRunner, good: ReplayServer, tmp_path: Path) -> None:
    queries = tmp_path / "in.jsonl"
    write_queries(queries, 6, extra='{not json\n\n{"id": 99, "query": ""}\n{"query": "no id here?"}\n')
    run = cli("batch", str(queries), "--output", "out.jsonl", "--user", "carol", "--concurrency", "3")
    assert run.code == 5, run.stderr  # CLI.md: finished, some rows ended in an error
    assert run.stdout == ""
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(results) == 9
    answers = [r for r in results if "request_id" in r]
    assert len(answers) == 7 and all(set(r) >= ASK_KEYS for r in answers)
    assert {r["user"] for r in answers} == {"carol"}
    errors = {r["id"]: r for r in results if "error" in r}
    assert errors[None] == {"id": None, "line": 7, "error": "line 7: not valid JSON (Expecting property "
                                                               "name enclosed in double quotes)"}
    assert errors[99]["error"] == "line 9: 'query' must be a non-empty string"
    assert 10 in {r["id"] for r in answers}  # no id: the line number
    warnings, summary = stderr_lines(run.stderr)[:-1], stderr_lines(run.stderr)[-1]
    assert [w.split(":")[:3] for w in warnings] == [["warning", f" {queries}", " line 7"],
                                                    ["warning", f" {queries}", " line 9"]]
    assert summary.startswith("batch: 9 rows · 7 answered · 2 errors · $")
    batch_ids = {str(r["external_id"]).split(":")[0] for r in rows(cli.db, "requests")}
    assert len(batch_ids) == 1


def test_results_go_to_stdout_without_output(cli: CliRunner, good: ReplayServer, tmp_path: Path) -> None:
    write_queries(tmp_path / "in.jsonl", 3)
    run = cli("batch", "in.jsonl")
    assert run.code == 0, run.stderr
    assert sorted(json.loads(line)["id"] for line in run.stdout.splitlines()) == ["q000", "q001", "q002"]


@pytest.mark.parametrize(("args", "message"), [
    (["missing.jsonl"], "missing.jsonl: no such file"),
    (["in.jsonl", "--resume"], "--resume needs --output"),
])
def test_usage_errors_are_one_line(cli: CliRunner, tmp_path: Path, args: list[str], message: str) -> None:
    write_queries(tmp_path / "in.jsonl", 1)
    run = cli("batch", *args)
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert message in run.stderr


def test_resume_refuses_an_output_file_that_is_not_ours(cli: CliRunner, good: ReplayServer,
                                                        tmp_path: Path) -> None:
    write_queries(tmp_path / "in.jsonl", 2)
    (tmp_path / "out.jsonl").write_text("id,answer\nq1,yes\n", encoding="utf-8")
    run = cli("batch", "in.jsonl", "-o", "out.jsonl", "--resume")
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert "out.jsonl:1: not a result line" in run.stderr


def test_kill_9_then_resume_answers_every_row_exactly_once(cli: CliRunner, server: ReplayServer,
                                                           tmp_path: Path) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, latency_s=0.04))
    ids = write_queries(tmp_path / "in.jsonl", 80)
    out = tmp_path / "out.jsonl"
    for at_least in (8, 30):  # kill twice, at different points
        proc = cli.popen("batch", "in.jsonl", "-o", "out.jsonl", "-c", "4", "--resume")
        wait_until(lambda n=at_least: out.exists() and out.read_bytes().count(b"\n") >= n)
        proc.kill()
        proc.wait()
    partial = out.read_bytes().count(b"\n")
    assert partial < 80
    run = cli("batch", "in.jsonl", "-o", "out.jsonl", "-c", "8", "--resume")
    assert run.code == 0, run.stderr
    assert "already done" in run.stderr
    assert_exactly_once(ids, out, cli.db)
    # the rows in flight at each kill (up to 4) were paid for, maybe: in the ledger, charged
    # their estimate, and written as errors (asking again would pay twice)
    cut = [r for r in rows(cli.db, "requests") if r["status"] == "interrupted"]
    assert len(cut) <= 8, cut  # (almost always some: 4 calls in flight at each kill)


def test_ctrl_c_stops_cleanly(cli: CliRunner, server: ReplayServer, tmp_path: Path) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, latency_s=0.05))
    ids = write_queries(tmp_path / "in.jsonl", 60)
    out = tmp_path / "out.jsonl"
    proc = cli.popen("batch", "in.jsonl", "-o", "out.jsonl", "-c", "4")
    wait_until(lambda: out.exists() and out.read_bytes().count(b"\n") >= 6)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert_one_error_line(stderr)
    assert "interrupted" in stderr and "--resume" in stderr
    written = output_ids(out)
    assert max(written.values()) == 1 and 6 <= len(written) < 60
    assert len(rows(cli.db, "requests")) == len(written)  # in the output and the ledger, once
    run = cli("batch", "in.jsonl", "-o", "out.jsonl", "--resume")
    assert run.code == 0, run.stderr
    assert_exactly_once(ids, out, cli.db)


def test_a_full_disk_stops_with_one_line_and_no_partial_rows(cli: CliRunner, good: ReplayServer,
                                                             tmp_path: Path) -> None:
    """The process may not grow any file past a limit (what a full disk looks like to it):
    the ledger write fails, the batch stops, every written line is a committed row."""
    ids = write_queries(tmp_path / "in.jsonl", 300)
    open_ledger(cli.db).close()
    limit = cli.db.stat().st_size + 96 * 1024

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then writes fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run([sys.executable, "-m", "cascadeflow_cli", "batch", "in.jsonl", "-o", "out.jsonl"],
                          cwd=tmp_path, env=cli.env(), capture_output=True, text=True, timeout=120,
                          preexec_fn=small_files)
    # issue 11: the rows paid for but not recorded are written and wait in the journal (exit 4)
    assert proc.returncode == 4, proc.stderr
    assert_one_error_line(proc.stderr)
    assert "full" in proc.stderr or "disk" in proc.stderr, proc.stderr
    assert "--resume" in proc.stderr and "journal" in proc.stderr
    out = tmp_path / "out.jsonl"
    written = output_ids(out)
    assert 0 < len(written) < 300
    committed = {str(r["external_id"]).split(":", 1)[1] for r in rows(cli.db, "requests")}
    journaled = {str(rec.external_id).split(":", 1)[1] for _, rec, _ in journal.pending(cli.db)}
    assert journaled and set(written) <= committed | journaled
    for request in rows(cli.db, "requests"):  # whole requests only: each has its call
        assert any(c["request_id"] == request["id"] for c in rows(cli.db, "calls"))
    run = cli("batch", "in.jsonl", "-o", "out.jsonl", "--resume")
    assert run.code == 0, run.stderr
    assert_exactly_once(ids, out, cli.db)


def test_a_read_only_ledger_is_one_clear_error(cli: CliRunner, good: ReplayServer, tmp_path: Path) -> None:
    write_queries(tmp_path / "in.jsonl", 3)
    open_ledger(cli.db).close()
    with immutable(cli.db):
        run = cli("batch", "in.jsonl", "-o", "out.jsonl")
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert str(cli.db) in run.stderr and "readonly" in run.stderr.replace("read-only", "readonly")
    assert rows(cli.db, "requests") == []


def test_progress_bar_on_a_terminal(cli: CliRunner, good: ReplayServer, tmp_path: Path) -> None:
    write_queries(tmp_path / "in.jsonl", 20)
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "cascadeflow_cli", "batch", "in.jsonl", "-o", "out.jsonl"],
                            cwd=tmp_path, env={**cli.env(), "COLUMNS": "150"}, stdout=subprocess.DEVNULL,
                            stderr=follower)
    os.close(follower)
    seen = read_terminal(leader)
    assert proc.wait(30) == 0
    text = seen.decode("utf-8", errors="replace")
    assert "20/20" in text and "rows/s" in text and "spent $" in text and "ETA" in text


def test_plain_progress_line() -> None:
    from cascadeflow_cli.cli.app import app  # noqa: F401  (registers the commands first)
    from cascadeflow_cli.cli.batch_cmd import progress_line

    p = BatchProgress(total=10_000, skipped=200, answered=1_000, errors=3, cost_nusd=12_300_000)
    p.started -= 20.0
    line = progress_line(p)
    assert re.fullmatch(r"batch: 1,203/10,000 \(12%\) · 50\.\d rows/s · ETA 2m5\ds · spent \$0\.0123 · "
                        r"3 errors", line), line


def test_every_row_failing_exits_5_after_writing_them_all(cli: CliRunner, server: ReplayServer,
                                                          tmp_path: Path) -> None:
    """Issue 11: a batch whose rows all failed used to exit 0."""
    server.set_behavior("gpt-4o", ModelBehavior(status=400))
    server.set_behavior("gpt-4o-mini", ModelBehavior(status=400))
    write_queries(tmp_path / "in.jsonl", 4)
    run = cli("batch", "in.jsonl", "-o", "out.jsonl")
    assert run.code == 5, run.stderr
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(results) == 4 and all("error" in r for r in results)
    assert stderr_lines(run.stderr)[-1].startswith("batch: 4 rows · 0 answered · 4 errors")
    assert "Traceback" not in run.stderr


def test_a_row_nested_too_deeply_is_an_error_row(cli: CliRunner, good: ReplayServer, tmp_path: Path) -> None:
    """hostile-4: a line of 100,000 `[` stopped the whole batch with "unexpected
    RecursionError"; it is now that row's error and the other rows are answered."""
    path = tmp_path / "in.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + '\n{"id": "b", "query": "What is 2+2?"}\n')
    out = tmp_path / "out.jsonl"
    run = cli("batch", str(path), "--output", str(out))
    assert run.code == 5, run.stderr
    assert "unexpected" not in run.stderr and "Traceback" not in run.stderr
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(str(r.get("id")) for r in results) == ["None", "b"]
    assert any("nested too deeply" in r.get("error", "") for r in results)


def test_resume_after_a_torn_last_line_asks_nothing_again(cli: CliRunner, good: ReplayServer,
                                                         tmp_path: Path) -> None:
    """A crash mid-write leaves the last result line half-written: --resume cuts it off and
    writes that row from the ledger (its request committed before the line), not a new ask."""
    ids = write_queries(tmp_path / "in.jsonl", 4)
    out = tmp_path / "out.jsonl"
    assert cli("batch", "in.jsonl", "--output", "out.jsonl").code == 0
    text = out.read_bytes()
    out.write_bytes(text[: len(text) - 25])  # the last line torn, no newline
    run = cli("batch", "in.jsonl", "--output", "out.jsonl", "--resume")
    assert run.code == 0, run.stderr
    assert "1 recovered from the ledger" in run.stderr
    assert_exactly_once(ids, out, cli.db)


def test_resume_after_the_output_was_lost_takes_every_row_from_the_ledger(
    cli: CliRunner, good: ReplayServer, tmp_path: Path
) -> None:
    """The output file deleted (or never flushed to a disk that went away): --resume
    started a new batch and paid for every row again, though an empty file was recovered
    from the ledger."""
    ids = write_queries(tmp_path / "in.jsonl", 4)
    out = tmp_path / "out.jsonl"
    assert cli("batch", "in.jsonl", "--output", "out.jsonl").code == 0
    asked = good.request_count()
    out.unlink()
    run = cli("batch", "in.jsonl", "--output", "out.jsonl", "--resume")
    assert run.code == 0, run.stderr
    assert "4 recovered from the ledger" in run.stderr
    assert good.request_count() == asked
    assert_exactly_once(ids, out, cli.db)


def test_a_row_with_an_empty_or_odd_domain_is_refused_unpaid(cli: CliRunner, good: ReplayServer,
                                                             tmp_path: Path) -> None:
    """``"domain": ""`` was routed by detection as if absent (and paid for), unlike ``ask --domain ""``."""
    lines = [{"id": "ok", "query": "What is 2+2?"}, {"id": "empty", "query": "Q?", "domain": ""},
             {"id": "blank", "query": "Q?", "domain": "  "}, {"id": "num", "query": "Q?", "domain": 5},
             {"id": "unknown", "query": "Q?", "domain": "astrology"}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    run = cli("batch", "in.jsonl", "--output", "out.jsonl")
    assert run.code == 5, run.stderr
    results = {r["id"]: r for r in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())}
    assert "request_id" in results["ok"]
    for row_id, line in (("empty", 2), ("blank", 3), ("num", 4)):
        assert results[row_id] == {"id": row_id, "error": f"line {line}: 'domain' must be a non-empty string"}
    assert results["unknown"]["error"].startswith("unknown domain 'astrology'")
    assert len(rows(cli.db, "requests")) == 1  # no refused row was paid for


@pytest.mark.parametrize("given", ["", "  "], ids=["empty", "blank"])
def test_an_empty_user_option_is_one_line_not_the_default_user(cli: CliRunner, good: ReplayServer,
                                                               tmp_path: Path, given: str) -> None:
    """`--user ""` (an empty $VAR in a script) charged every row to 'default', past the
    user's own budget; `--user "  "` made every row an error. Both as `ask` says it."""
    queries = tmp_path / "in.jsonl"
    write_queries(queries, 2)
    for args in (("batch", str(queries), "--output", "out.jsonl", "--user", given),
                 ("ask", "hi", "--user", given)):
        run = cli(*args)
        assert run.code == 1, run.stderr
        assert_one_error_line(run.stderr)
        assert "the user name is empty" in run.stderr
    assert good.request_count() == 0 and rows(cli.db, "requests") == []
    assert not (tmp_path / "out.jsonl").exists()


def test_resume_refuses_an_input_whose_rows_moved_under_their_keys(cli: CliRunner, good: ReplayServer,
                                                                     tmp_path: Path) -> None:
    """Rows without an "id" are keyed by line number: a line put in above them used to be
    skipped as done, every answer went to the row below its own, the last row was paid twice."""
    queries = [f"What is the capital of country number {i}?" for i in range(4)]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"query": q}) + "\n" for q in queries), encoding="utf-8")
    assert cli("batch", "in.jsonl", "-o", "out.jsonl").code == 0
    before, asked = (tmp_path / "out.jsonl").read_bytes(), good.request_count()
    source.write_text("".join(json.dumps({"query": q}) + "\n" for q in ["Something new?", *queries]),
                      encoding="utf-8")
    run = cli("batch", "in.jsonl", "-o", "out.jsonl", "--resume")
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert "in.jsonl: changed since the run that wrote" in run.stderr and "line 1 (no 'id'" in run.stderr
    assert good.request_count() == asked and (tmp_path / "out.jsonl").read_bytes() == before
    # rows appended below the answered ones are what --resume is for: they run
    source.write_text("".join(json.dumps({"query": q}) + "\n" for q in [*queries, "Something new?"]),
                      encoding="utf-8")
    run = cli("batch", "in.jsonl", "-o", "out.jsonl", "--resume")
    assert run.code == 0, run.stderr
    assert "1 answered · 4 already done" in run.stderr
    assert output_ids(tmp_path / "out.jsonl") == Counter(str(n) for n in range(1, 6))


def test_a_second_run_on_an_output_being_written_is_refused(cli: CliRunner, server: ReplayServer,
                                                            tmp_path: Path) -> None:
    """Two `--resume` runs of one output both asked the rows it lacked: paid twice, written
    twice, and the second stopped (exit 4) on the ledger's unique batch row."""
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, latency_s=0.25))
    ids = write_queries(tmp_path / "in.jsonl", 24)
    out = tmp_path / "out.jsonl"
    first = cli.popen("batch", "in.jsonl", "-o", "out.jsonl", "-c", "1", "--resume")  # 6 s at least
    wait_until(lambda: out.exists() and out.read_bytes().count(b"\n") >= 2)
    for extra in (["--resume"], []):  # without --resume it emptied the running batch's output
        run = cli("batch", "in.jsonl", "-o", "out.jsonl", *extra)
        assert run.code == 1, run.stderr
        assert_one_error_line(run.stderr)
        assert "out.jsonl: another `cascade batch` is writing it" in run.stderr
    assert first.poll() is None  # (what was refused was a run beside it)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert_exactly_once(ids, out, cli.db)
    assert server.request_count() == 24  # each row asked once


def _peak_rss_mib(cli: CliRunner, *args: str) -> tuple[int, float]:
    """``cascade ARGS`` in a fresh process; its exit code and peak resident memory."""
    probe = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
             "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "cascadeflow_cli", *args],
                          cwd=cli.cwd, env=cli.env(), capture_output=True, text=True, timeout=300)
    code, kib = done.stdout.split()
    return int(code), int(kib) / 1024


def test_a_line_without_an_end_is_one_error_row_not_read_whole(cli: CliRunner, good: ReplayServer,
                                                               tmp_path: Path) -> None:
    """A file with no line breaks (a JSON array, an archive named .jsonl) was read whole,
    twice, into memory: 400 MiB of it took the process past 1.2 GiB."""
    small = tmp_path / "small.jsonl"
    write_queries(small, 2)
    huge = tmp_path / "huge.jsonl"
    with huge.open("wb") as fh:
        fh.write(small.read_bytes().splitlines(keepends=True)[0])
        fh.seek(400 << 20, os.SEEK_CUR)  # a sparse run of NUL bytes: 400 MiB, no disk
        fh.write(b"\n" + small.read_bytes().splitlines(keepends=True)[1])
    code, base = _peak_rss_mib(cli, "batch", "small.jsonl", "-o", "small-out.jsonl")
    assert code == 0
    code, peak = _peak_rss_mib(cli, "batch", "huge.jsonl", "-o", "out.jsonl")
    assert code == 5  # finished, one row an error
    assert peak - base < 200, (base, peak)
    results = {r["id"]: r for r in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())}
    assert results[None]["error"] == "line 2: longer than 64 MiB, the most cascade reads of one line"
    assert {"q000", "q001"} <= set(results) and all("request_id" in results[k] for k in ("q000", "q001"))
