"""Fault injection on the write path of `cascade ask` (issue 11): the real command in a
subprocess, paused at each step of a request by the pause points of
cascadeflow_cli/faults.py (the real code path; see its docstring), then hit by a fault:
SIGINT, SIGTERM, SIGKILL, a disk that fills (RLIMIT_FSIZE set on the running process, so
every further write past a file's current size fails with EFBIG, which SQLite reports as
"database or disk is full"), or a ledger that becomes read-only (chattr +i).

After each cell the next command runs (another `ask`, which replays the side journal and
reclaims dead processes' reservations), and then: PRAGMA integrity_check is ok, no
reservation is left, and every call the provider answered is in the ledger with its cost.
The test ids are the matrix: FAULT@STEP.
"""

from __future__ import annotations

import contextlib
import resource
import signal
import sqlite3
from pathlib import Path

import pytest

from cascadeflow_cli.faults import PAUSE_VAR, PAUSED_VAR, RESUME_VAR
from cascadeflow_cli.ledger import journal
from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.cli.support import immutable, kill_9_when, wait_until
from tests.conftest import GOOD_ANSWER, CliRunner, config_text, ledger_rows

Q1, Q2 = "What is the capital of France?", "What is the capital of Spain?"
PRICED = "input_cost_per_million = 1.0\noutput_cost_per_million = 2.0\n"
STEPS = ("before-reserve", "after-reserve", "during-call", "after-call", "in-commit")
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}
PAID_STEPS = ("after-call", "in-commit")  # the provider has answered by then

MATRIX = [(sig, step) for sig in SIGNALS for step in STEPS] + [
    ("disk-full", "after-call"),
    ("disk-full", "in-commit"),
    ("read-only", "before-reserve"),
]


@pytest.fixture
def runner(tmp_path: Path, server: ReplayServer) -> CliRunner:
    server.set_behavior(
        "gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, prompt_tokens=100, completion_tokens=100)
    )
    path = tmp_path / "cascadeflow.toml"
    path.write_text(
        config_text(server.base_url, mini_extra=PRICED, big_extra=PRICED)
        + '\n[budgets]\nmode = "block"\n[budgets.default]\ndaily = 5\n'
    )
    return CliRunner(tmp_path, path, tmp_path / "ledger.db")


def _fill_disk(pid: int, ledger: Path) -> None:
    """From now on the process may not grow any file past its current size (the WAL, the
    journal's new files up to that size): what a disk that just filled looks like to it."""
    wal = ledger.with_name(ledger.name + "-wal")
    limit = max(wal.stat().st_size if wal.exists() else 0, 16 * 1024)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, limit))


def _check(
    runner: CliRunner, server: ReplayServer, paid: bool, status: str, *, in_flight: bool = False
) -> None:
    """The next command, then: integrity, no reservation left, the paid call recorded (a
    call that was in flight: once, interrupted, charged its estimate)."""
    answered_before = server.request_count("gpt-4o-mini")
    after = runner("ask", Q2)
    assert after.code == 0, after.stderr
    assert "Traceback" not in after.stderr
    conn = sqlite3.connect(runner.db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("select count(*) from reservations").fetchone()[0] == 0
        first = conn.execute(
            "select r.status, r.cost_nusd, count(c.id) from requests r left join calls c "
            "on c.request_id = r.id and c.status = 'ok' where r.query = ? group by r.id",
            [Q1],
        ).fetchall()
        orphans = conn.execute("select count(*) from calls where request_id not in (select id from requests)")
        assert orphans.fetchone()[0] == 0
        sent = conn.execute(
            "select r.status, r.cost_nusd, c.status, c.error_type, c.cost_source, c.input_tokens, "
            "c.output_tokens, c.max_tokens, c.cost_nusd from requests r join calls c on c.request_id = r.id "
            "where r.query = ?", [Q1]).fetchall()
    finally:
        conn.close()
    assert journal.pending(runner.db) == []  # replayed by the next command
    if in_flight:  # sent, never answered: the provider may bill it, so it is charged its worst case
        assert len(sent) == 1, sent
        r_status, r_cost, c_status, kind, source, inp, out, max_tokens, cost = sent[0]
        assert (r_status, c_status, kind) == ("interrupted", "error", "CallInFlight")
        assert source == "config+in-flight"
        assert out == max_tokens and inp > 0
        assert cost == r_cost == inp * 1000 + out * 2000  # $1 / $2 per million tokens
    elif paid:  # the provider answered Q1: that call and its cost are in the ledger, once
        assert answered_before >= 1
        assert len(first) == 1 and first[0][2] == 1 and first[0][1] > 0, first
        assert first[0][0] == status  # a journal replay records the answered request it was
    else:  # nothing was answered, so nothing may be charged
        assert all(cost == 0 and calls == 0 for _, cost, calls in first), first


@pytest.mark.parametrize(("fault", "step"), MATRIX, ids=[f"{f}@{s}" for f, s in MATRIX])
def test_nothing_paid_is_lost(
    runner: CliRunner, server: ReplayServer, tmp_path: Path, fault: str, step: str
) -> None:
    paused, resume = tmp_path / "paused", tmp_path / "resume"
    env = {PAUSED_VAR: str(paused), RESUME_VAR: str(resume)}
    if step == "during-call":
        server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, latency_s=30))
    else:
        env[PAUSE_VAR] = step
    assert runner("budget", "show", "default").code == 0  # the ledger exists before the fault
    proc = runner.popen("ask", Q1, **env)
    try:
        if step == "during-call":
            wait_until(lambda: server.request_count("gpt-4o-mini") > 0 or proc.poll() is not None)
        else:
            wait_until(lambda: paused.exists() or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()
        if fault in SIGNALS:
            proc.send_signal(SIGNALS[fault])
            stdout, stderr = proc.communicate(timeout=30)
        elif fault == "disk-full":
            _fill_disk(proc.pid, runner.db)
            resume.touch()
            stdout, stderr = proc.communicate(timeout=30)
        else:  # read-only
            with immutable(runner.db):
                resume.touch()
                stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    server.set_behavior(
        "gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, prompt_tokens=100, completion_tokens=100)
    )
    assert "Traceback" not in stderr and "unexpected" not in stderr, stderr
    if fault in ("SIGINT", "SIGTERM"):
        assert proc.returncode == 130, stderr
        assert stderr.strip().splitlines()[-1] == "error: interrupted"
    elif fault == "SIGKILL":
        assert proc.returncode == -signal.SIGKILL
    elif fault == "disk-full":  # answered, not recorded: the answer is shown, exit 4
        assert proc.returncode == 4, stderr
        assert stdout == GOOD_ANSWER + "\n"
        assert "not recorded" in stderr and "journal" in stderr
        assert len(journal.pending(runner.db)) == 1
    else:  # read-only before anything was reserved: refused, nothing sent
        assert proc.returncode == 1, stderr
        assert "read-only" in stderr and server.request_count("gpt-4o-mini") == 0
    # every paid cell is replayed from the journal as the answered request it was; a call
    # in flight is recorded whatever ended the process (the journal's line for kill -9)
    _check(runner, server, paid=step in PAID_STEPS, status="ok", in_flight=step == "during-call")


@pytest.mark.parametrize("fault", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_a_draft_sampled_in_several_calls_keeps_the_calls_already_answered(
    tmp_path: Path, server: ReplayServer, fault: str
) -> None:
    """`consistency_samples = 3` from a provider that ignores `n`: the draft takes three
    calls. A signal during the second one used to lose the first, answered and paid: it
    became the draft's completion only once all three had come back, and nothing was
    journaled before. Now each answered call is recorded (SIGINT, SIGTERM) or waits in the
    journal for the next command (SIGKILL)."""
    server.set_behavior("gpt-4o-mini", ModelBehavior(
        answer=GOOD_ANSWER, prompt_tokens=100, completion_tokens=100, honor_n=False, latency_s=1.0))
    path = tmp_path / "cascadeflow.toml"
    path.write_text(config_text(server.base_url, mini_extra=PRICED, big_extra=PRICED)
                    + "\n[quality]\nconsistency_samples = 3\n")
    runner = CliRunner(tmp_path, path, tmp_path / "ledger.db")
    assert runner("budget", "show", "default").code == 0
    proc = runner.popen("ask", Q1)
    try:
        wait_until(lambda: server.request_count("gpt-4o-mini") >= 2 or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(SIGNALS[fault])
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "Traceback" not in stderr and "unexpected" not in stderr, stderr
    assert proc.returncode == (-signal.SIGKILL if fault == "SIGKILL" else 130), stderr
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, prompt_tokens=100,
                                                     completion_tokens=100))
    assert runner("ask", Q2).code == 0  # replays the journal
    conn = sqlite3.connect(runner.db)
    try:
        paid = conn.execute(
            "select c.status, c.cost_nusd, c.output_tokens from requests r join calls c "
            "on c.request_id = r.id where r.query = ? and c.cost_nusd > 0", [Q1]).fetchall()
        assert conn.execute("select count(*) from reservations").fetchone()[0] == 0
    finally:
        conn.close()
    # the first call (100 in, 100 out at $1/$2 per million) answered before the signal
    assert len(paid) >= 1 and sum(cost for _, cost, _ in paid) >= 300_000, paid
    assert journal.pending(runner.db) == []


def _shadow_runner(tmp_path: Path, server: ReplayServer) -> CliRunner:
    """Every accepted draft also answered by the verifier (priced: 100 + 100 tokens)."""
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    server.set_behavior("gpt-4o", ModelBehavior(answer=GOOD_ANSWER, prompt_tokens=100,
                                                completion_tokens=100, latency_s=1.0))
    path = tmp_path / "cascadeflow.toml"
    path.write_text(config_text(server.base_url, mini_extra=PRICED, big_extra=PRICED)
                    + "\n[quality]\nshadow_rate = 1.0\n")
    runner = CliRunner(tmp_path, path, tmp_path / "ledger.db")
    assert runner("budget", "show", "default").code == 0
    return runner


def _shadow_cost(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        [(cost,)] = conn.execute(
            "select coalesce(sum(c.cost_nusd), 0) from calls c join requests r on r.id = c.request_id "
            "where r.query = ? and c.role = 'shadow'", [Q1]).fetchall()
        totals = conn.execute("select sum(cost_nusd) from requests where query = ?", [Q1]).fetchone()
        assert conn.execute("select count(*) from reservations").fetchone()[0] == 0
    finally:
        conn.close()
    assert totals[0] >= cost  # the request's total counts its shadow
    return int(cost)


def test_a_shadow_call_the_full_disk_refuses_waits_in_the_journal(
    tmp_path: Path, server: ReplayServer
) -> None:
    """The shadow verifier answered (paid) but the disk filled meanwhile, so its commit
    failed: its call used to vanish without a word (the background thread swallowed the
    error)."""
    runner = _shadow_runner(tmp_path, server)
    proc = runner.popen("ask", Q1)
    try:
        wait_until(lambda: server.request_count("gpt-4o") >= 1 or proc.poll() is not None)
        assert proc.poll() is None
        _fill_disk(proc.pid, runner.db)  # the answer is recorded; the shadow call is in flight
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr  # the answer itself was recorded
    assert stdout == GOOD_ANSWER + "\n"
    assert "Traceback" not in stderr and "unexpected" not in stderr, stderr
    assert "shadow" in stderr and "journal" in stderr, stderr  # said, not silent
    assert len(journal.pending(runner.db)) == 1
    assert runner("budget", "show", "default").code == 0  # the next command replays it
    assert journal.pending(runner.db) == []
    assert _shadow_cost(runner.db) == 300_000
    assert runner("budget", "show", "default").code == 0  # a second replay adds nothing
    assert _shadow_cost(runner.db) == 300_000


def test_a_shadow_call_answered_before_kill_9_is_recorded_by_the_next_command(
    tmp_path: Path, server: ReplayServer
) -> None:
    """kill -9 while the answered shadow waits for the ledger's write lock: it was written
    ahead to the journal, and the next command records it."""
    runner = _shadow_runner(tmp_path, server)
    proc = runner.popen("ask", Q1)
    try:
        wait_until(lambda: server.request_count("gpt-4o") >= 1 or proc.poll() is not None)
        locker = sqlite3.connect(runner.db, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")  # the shadow's commit waits for this
        try:
            # the answered shadow is written ahead, then its commit waits on the lock
            # (not its line in flight, written before it was sent: status "error")
            wait_until(lambda: b'"status": "ok", "call"' in _journal_bytes(runner.db)
                       or proc.poll() is not None, timeout=60)
            assert proc.poll() is None
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        finally:
            locker.execute("ROLLBACK")
            locker.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert runner("budget", "show", "default").code == 0
    assert journal.pending(runner.db) == []
    assert _shadow_cost(runner.db) == 300_000


def _journal_bytes(db: Path) -> bytes:
    seen = b""
    for path in journal.journal_dir(db).glob("ahead-*.log"):
        with contextlib.suppress(FileNotFoundError):  # settled and deleted meanwhile
            seen += path.read_bytes()
    return seen


def test_ask_stream_waits_for_its_shadow_call(tmp_path: Path, server: ReplayServer) -> None:
    """`ask --stream` returned without waiting for the shadow verification it had started:
    the process exited with the verifier's call about to be sent or in flight (a provider
    bills a call it received even if the client has gone), and the ledger never heard of
    it; here the thread died before sending (0 requests)."""
    runner = _shadow_runner(tmp_path, server)
    run = runner("ask", "--stream", Q1)
    assert run.code == 0, run.stderr
    assert server.request_count("gpt-4o") == 1
    assert _shadow_cost(runner.db) == 300_000


def test_a_streamed_answer_cut_by_kill_9_keeps_what_was_generated(
    tmp_path: Path, server: ReplayServer
) -> None:
    """`ask --stream`, the draft refused, the verifier streaming slowly: kill -9 mid-stream
    lost the verifier's partial answer (generated, so billed): it was priced only when the
    stream ended or was interrupted. The answer so far is journaled while it streams."""
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer="I'm sorry, but I can't help with that.",
                                                     prompt_tokens=100, completion_tokens=100))
    server.set_behavior("gpt-4o", ModelBehavior(answer=" ".join([GOOD_ANSWER] * 4), stream_delay_s=0.3))
    path = tmp_path / "cascadeflow.toml"
    path.write_text(config_text(server.base_url, mini_extra=PRICED, big_extra=PRICED))
    runner = CliRunner(tmp_path, path, tmp_path / "ledger.db")
    assert runner("budget", "show", "default").code == 0
    # the verifier's answer so far, journaled mid-stream (its finish reason says so)
    kill_9_when(runner.popen("ask", "--stream", Q1),
                lambda: b'"finish_reason": "interrupted"' in _journal_bytes(runner.db))
    assert runner("budget", "show", "default").code == 0  # replays the journal
    conn = sqlite3.connect(runner.db)
    try:
        calls = dict(conn.execute(
            "select c.role, c.cost_nusd from calls c join requests r on r.id = c.request_id "
            "where r.query = ?", [Q1]).fetchall())
    finally:
        conn.close()
    assert calls["draft"] == 300_000
    assert calls.get("verifier", 0) > 0, calls  # the part it streamed, priced from its text


def test_an_entry_the_ledger_refuses_for_good_is_set_aside_and_ask_goes_on(runner: CliRunner) -> None:
    """hostile-7: a journal entry the ledger can never take (a shadow call whose request is
    in no ledger: FOREIGN KEY) made every later `ask` fail 'N answered request(s) ... cannot
    be recorded; nothing was sent', for ever. It is moved to <ledger>.journal-refused/,
    byte for byte, said in one warning line, and the command goes on."""
    from dataclasses import replace

    from cascadeflow_cli.ledger.labels import ShadowOutcome
    from tests.ledger.test_db import request

    assert runner("ask", Q1).code == 0  # a ledger with one request
    call = replace(request(5).calls[0], role="shadow", seq=1, id="nowhere-1", request_id="nowhere")
    entry = journal.write(runner.db, ShadowOutcome("nowhere", "ok", call=call), None, durable=True)
    content = entry.read_bytes()
    run = runner("ask", Q2)
    assert run.code == 0, run.stderr
    moved = runner.db.with_name("ledger.db.journal-refused") / "nowhere-1.json"
    [warning] = [line for line in run.stderr.splitlines() if line.startswith("warning:")]
    assert str(moved) in warning and "FOREIGN KEY" in warning, warning
    assert moved.read_bytes() == content and not entry.exists()  # the paid call, intact
    assert len(ledger_rows(runner.db, "requests")) == 2
    again = runner("logs")
    assert again.code == 0 and "warning" not in again.stderr  # said once
    assert moved.read_bytes() == content
