"""`cascade ask` end to end: the real command in a subprocess, the loopback server, a real
ledger file."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.cli.support import (
    ASK_KEYS,
    CALL_KEYS,
    DETAILED,
    LONG_ANSWER,
    QUERY,
    REFUSAL,
    is_number,
    read_terminal,
    rows,
    run_together,
    stderr_lines,
    wait_until,
)
from tests.conftest import GOOD_ANSWER, CliRunner, assert_one_error_line, config_text

# 1000 tokens in and out: mini costs 1000*0.15e-6 + 1000*0.6e-6 = $0.00075, and gpt-4o
# alone would cost 1000*2.5e-6 + 1000*10e-6 = $0.0125 (litellm's list prices).
TOKENS = {"prompt_tokens": 1000, "completion_tokens": 1000}
MINI_COST, BIG_COST = 0.00075, 0.0125


@pytest.fixture
def good_mini(server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, **TOKENS))


def write_config(tmp_path: Path, text: str, name: str = "other.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- the happy paths ----------------------------------------------------------------------


@pytest.mark.usefixtures("good_mini")
def test_answer_on_stdout_and_one_line_summary_on_stderr(cli: CliRunner, server: ReplayServer
                                                         ) -> None:
    run = cli("ask", QUERY)
    assert run.code == 0, run.stderr
    assert run.stdout == GOOD_ANSWER + "\n"
    [summary] = stderr_lines(run.stderr)
    assert summary.startswith("mini · draft accepted")
    assert "$0.00075 " in summary  # the cost (three significant digits, no float noise)
    assert "saved $0.0118 (94%) vs $0.0125 alone" in summary
    assert server.request_count("gpt-4o") == 0
    [req] = rows(cli.db, "requests")
    assert req["user"] == "default" and req["status"] == "ok" and req["query"] == QUERY


@pytest.mark.usefixtures("good_mini")
def test_json_has_the_contract_keys_and_matches_the_ledger(cli: CliRunner) -> None:
    run = cli("ask", QUERY, "--json")
    assert run.code == 0, run.stderr
    data = run.json()
    assert isinstance(data, dict)
    assert set(data) == ASK_KEYS
    assert data["answer"] == GOOD_ANSWER
    assert (data["model"], data["draft_model"]) == ("mini", "mini")
    assert data["draft_accepted"] is True and data["escalated"] is False
    assert data["enforcement"] == "allow" and data["user"] == "default"
    for key in ("cost", "verifier_only_cost", "savings", "latency_ms", "quality_score"):
        assert is_number(data[key]), key
    assert data["cost"] == pytest.approx(MINI_COST)
    assert data["verifier_only_cost"] == pytest.approx(BIG_COST)
    assert data["savings"] == pytest.approx(BIG_COST - MINI_COST)
    [call] = data["calls"]
    assert set(call) >= CALL_KEYS
    assert (call["model"], call["role"], call["accepted"]) == ("mini", "draft", True)
    assert (call["input_tokens"], call["output_tokens"]) == (1000, 1000)
    assert is_number(call["cost"]) and call["cost"] == pytest.approx(MINI_COST)

    [req] = rows(cli.db, "requests")
    assert req["id"] == data["request_id"]
    assert req["cost_nusd"] / 1e9 == data["cost"]
    assert req["verifier_only_cost_nusd"] / 1e9 == data["verifier_only_cost"]
    [row] = rows(cli.db, "calls")
    assert row["request_id"] == data["request_id"]
    assert row["cost_nusd"] / 1e9 == call["cost"]
    assert (row["input_tokens"], row["output_tokens"]) == (1000, 1000)


@pytest.mark.usefixtures("good_mini")
def test_user_from_flag_and_from_environment(cli: CliRunner) -> None:
    by_env, by_flag = run_together(cli, ["ask", QUERY, "--json"],
                                   ["ask", QUERY, "--json", "--user", "dave"], CASCADE_USER="carol")
    assert (by_env.code, by_flag.code) == (0, 0), by_env.stderr + by_flag.stderr
    assert by_env.json()["user"] == "carol"  # type: ignore[index]
    assert by_flag.json()["user"] == "dave"  # type: ignore[index]  # the flag wins
    assert sorted(r["user"] for r in rows(cli.db, "requests")) == ["carol", "dave"]


def test_models_flag_runs_only_that_model(cli: CliRunner, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o", ModelBehavior(answer=GOOD_ANSWER, **TOKENS))
    run = cli("ask", QUERY, "--models", "big", "--json")
    assert run.code == 0, run.stderr
    data = run.json()
    assert isinstance(data, dict)
    assert server.request_count("gpt-4o-mini") == 0 and server.request_count("gpt-4o") == 1
    assert data["model"] == "big" and data["answer"] == GOOD_ANSWER
    assert data["draft_accepted"] is False and data["escalated"] is False
    assert [c["model"] for c in data["calls"]] == ["big"]
    assert data["cost"] == pytest.approx(BIG_COST) and data["savings"] == 0
    assert [c["model"] for c in rows(cli.db, "calls")] == ["big"]


@pytest.mark.usefixtures("good_mini")
def test_dash_reads_the_query_from_stdin(cli: CliRunner, server: ReplayServer) -> None:
    run = cli("ask", "-", input=QUERY + "\n")
    assert run.code == 0, run.stderr
    assert run.stdout == GOOD_ANSWER + "\n"
    [body] = server.requests
    assert body["messages"][-1]["content"].strip() == QUERY
    [req] = rows(cli.db, "requests")
    assert str(req["query"]).strip() == QUERY


def test_refused_draft_escalates_to_the_strong_model(cli: CliRunner, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=REFUSAL))
    server.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER))
    run, human = run_together(cli, ["ask", DETAILED, "--json"], ["ask", DETAILED])
    assert run.code == 0, run.stderr
    data = run.json()
    assert isinstance(data, dict)
    assert data["answer"] == LONG_ANSWER
    assert (data["model"], data["draft_model"]) == ("big", "mini")
    assert data["escalated"] is True and data["draft_accepted"] is False
    draft, verifier = data["calls"]
    assert (draft["model"], draft["role"], draft["accepted"]) == ("mini", "draft", False)
    assert (verifier["model"], verifier["role"], verifier["accepted"]) == ("big", "verifier", True)
    assert draft["quality_score"] < data["quality_score"]
    assert data["cost"] == pytest.approx(draft["cost"] + verifier["cost"])
    assert data["savings"] == pytest.approx(-draft["cost"]) and data["savings"] < 0
    calls = [c for c in rows(cli.db, "calls") if c["request_id"] == data["request_id"]]
    assert [c["role"] for c in calls] == ["draft", "verifier"]

    assert human.code == 0 and human.stdout == LONG_ANSWER + "\n"
    [summary] = stderr_lines(human.stderr)
    assert summary.startswith("big · escalated from mini") and "lost $" in summary


# --- errors: one line, the documented exit code, a consistent ledger ----------------------


def test_invalid_toml_names_the_file_and_line(cli: CliRunner, tmp_path: Path,
                                              server: ReplayServer) -> None:
    bad = write_config(tmp_path, '[[models]]\nname = "mini"\nmodel = = "openai/gpt-4o-mini"\n')
    run = cli("ask", QUERY, CASCADE_CONFIG=str(bad))
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert str(bad) in run.stderr and "line 3" in run.stderr
    assert server.request_count() == 0 and rows(cli.db, "requests") == []


def test_missing_explicit_config_file(cli: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    run = cli("--config", str(missing), "ask", QUERY)
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert str(missing) in run.stderr


def test_unknown_model_in_models_flag(cli: CliRunner, server: ReplayServer) -> None:
    run = cli("ask", QUERY, "--models", "mini,nosuch")
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert "nosuch" in run.stderr
    assert server.request_count() == 0 and rows(cli.db, "requests") == []


@pytest.mark.parametrize("args, culprit", [
    (["--domain", ""], "--domain"),
    (["--domain", "   "], "--domain"),
    (["--models", ""], "--models"),
    (["--models", ",,"], "--models"),
    (["--models", " , mini"], "--models"),
    (["--models", "mini,"], "--models"),
], ids=["empty-domain", "blank-domain", "empty-models", "only-commas", "blank-entry", "trailing-comma"])
def test_an_empty_domain_or_chain_entry_is_refused_not_defaulted(cli: CliRunner, server: ReplayServer,
                                                                 args: list[str], culprit: str) -> None:
    # they fell back to the detected domain / the default chain, so the user paid for a
    # route they had not asked for
    run = cli("ask", QUERY, *args)
    assert run.code == 1, run.stderr
    assert_one_error_line(run.stderr)
    assert culprit in run.stderr
    assert server.request_count() == 0 and rows(cli.db, "requests") == []


def test_unpriced_model_fails_before_any_request(cli: CliRunner, tmp_path: Path,
                                                 server: ReplayServer) -> None:
    mystery = (f'[[models]]\nname = "mystery"\nmodel = "openai/no-such-model-xyz"\n'
               f'api_base = "{server.base_url}"\n')
    config = write_config(tmp_path, config_text(server.base_url, extra_models=mystery,
                                                chain='["mystery", "big"]'))
    run = cli("ask", QUERY, CASCADE_CONFIG=str(config))
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert "mystery" in run.stderr and "price" in run.stderr
    assert server.request_count() == 0
    assert rows(cli.db, "requests") == [] and rows(cli.db, "calls") == []


def test_provider_error_on_every_model_exits_2_and_is_recorded(cli: CliRunner,
                                                                server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(status=500))
    server.set_behavior("gpt-4o", ModelBehavior(status=500))
    run = cli("ask", QUERY)
    assert run.code == 2
    *retries, last = stderr_lines(run.stderr)
    assert_one_error_line(last)
    # issue 11: each retry is one line (no silent waits)
    assert [r.split(",")[0] for r in retries] == ["mini: HTTP 500"] * 2 + ["big: HTTP 500"] * 2
    assert run.stdout == ""
    # after retries: 1 + max_retries (2) attempts for each model
    assert server.request_count("gpt-4o-mini") == 3 and server.request_count("gpt-4o") == 3
    [failed] = rows(cli.db, "requests")
    assert failed["status"] == "error" and "500" in str(failed["error"])
    assert failed["cost_nusd"] == 0
    calls = rows(cli.db, "calls")
    assert [(c["model"], c["status"], c["attempts"], c["request_id"]) for c in calls] == [
        ("mini", "error", 3, failed["id"]), ("big", "error", 3, failed["id"])]


def test_missing_api_key_names_the_variable(cli: CliRunner, tmp_path: Path, server: ReplayServer,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOME_UNSET_VAR", raising=False)
    config = write_config(tmp_path, config_text(server.base_url,
                                                mini_extra='api_key_env = "SOME_UNSET_VAR"'))
    run = cli("ask", QUERY, CASCADE_CONFIG=str(config))
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert "SOME_UNSET_VAR" in run.stderr
    assert server.request_count() == 0
    # a setup error, found before anything was reserved or recorded
    assert rows(cli.db, "requests") == [] and rows(cli.db, "reservations") == []


@pytest.mark.usefixtures("good_mini")
def test_ledger_path_that_is_a_directory(cli: CliRunner, tmp_path: Path,
                                         server: ReplayServer) -> None:
    directory = tmp_path / "a-directory"
    directory.mkdir()
    run = cli("ask", QUERY, CASCADE_DB=str(directory))
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert str(directory) in run.stderr
    assert server.request_count() == 0  # nothing is spent that could not be recorded
    assert list(directory.iterdir()) == []


@pytest.mark.usefixtures("good_mini")
@pytest.mark.parametrize(("kind", "says"), [("loop", "a loop of symbolic links"),
                                            ("dangling", "which does not exist")])
def test_ledger_path_that_is_a_broken_symlink(cli: CliRunner, tmp_path: Path, server: ReplayServer,
                                              kind: str, says: str) -> None:
    """Both read 'cannot write ledger: the file or its directory is read-only'."""
    link = tmp_path / "l.db"
    if kind == "loop":
        (tmp_path / "other.db").symlink_to(link)
        link.symlink_to(tmp_path / "other.db")
    else:
        link.symlink_to(tmp_path / "gone" / "l.db")
    for args in (("ask", QUERY), ("usage",)):
        run = cli(*args, CASCADE_DB=str(link))
        assert run.code == 1
        assert_one_error_line(run.stderr)
        assert f"{link}: " in run.stderr and says in run.stderr and "read-only" not in run.stderr
    assert server.request_count() == 0 and not (tmp_path / "gone").exists()


def test_empty_query(cli: CliRunner, server: ReplayServer) -> None:
    run = cli("ask", "")
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert "empty" in run.stderr
    assert server.request_count() == 0 and rows(cli.db, "requests") == []


def test_blank_query_from_stdin(cli: CliRunner, server: ReplayServer) -> None:
    run = cli("ask", "-", input="  \n\n")
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert "empty" in run.stderr
    assert server.request_count() == 0 and rows(cli.db, "requests") == []


@pytest.mark.parametrize("args, culprit", [
    (["ask", "--bogus", QUERY], "--bogus"),
    (["--bogus-global", "ask", QUERY], "--bogus-global"),
    (["ask"], "query"),
    (["ask", QUERY, "--max-tokens", "many"], "--max-tokens"),
    # past int64: sent, paid, then an OverflowError and the answer set aside (hostile-13)
    (["ask", QUERY, "--max-tokens", "99999999999999999999999"], "--max-tokens"),
], ids=["unknown-option", "unknown-global-option", "missing-argument", "bad-value", "huge-value"])
def test_usage_errors_exit_1_with_one_clear_line(cli: CliRunner, server: ReplayServer,
                                                 args: list[str], culprit: str) -> None:
    run = cli(*args)
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert culprit.lower() in run.stderr.lower()
    # a typo is a usage error, not an internal failure that needs a traceback
    assert "unexpected" not in run.stderr and "--debug" not in run.stderr, run.stderr
    assert server.request_count() == 0


# --- processes: Ctrl-C and two writers ----------------------------------------------------


def test_ctrl_c_mid_call_exits_130_and_leaves_a_consistent_ledger(cli: CliRunner,
                                                                  server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(hang=True))
    proc = cli.popen("ask", QUERY)
    try:
        wait_until(lambda: server.request_count("gpt-4o-mini") > 0 or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and stdout == ""
    assert server.request_count("gpt-4o") == 0  # an interrupt is not a reason to escalate
    conn = sqlite3.connect(cli.db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        orphans = conn.execute("select count(*) from calls where request_id not in "
                               "(select id from requests)").fetchone()[0]
        assert orphans == 0
        statuses = [s for (s,) in conn.execute("select status from requests")]
    finally:
        conn.close()
    assert "ok" not in statuses


def test_two_processes_asking_at_once(cli: CliRunner, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, latency_s=0.2))
    procs = [cli.popen("ask", QUERY, "--json", "--user", user) for user in ("ann", "ben")]
    results = [p.communicate(timeout=60) for p in procs]
    for proc, (_, stderr) in zip(procs, results, strict=True):
        assert proc.returncode == 0, stderr
    ids = {json.loads(out)["request_id"] for out, _ in results}
    requests = rows(cli.db, "requests")
    assert {r["id"] for r in requests} == ids and len(ids) == 2
    assert sorted(r["user"] for r in requests) == ["ann", "ben"]
    assert all(r["status"] == "ok" for r in requests)
    calls = rows(cli.db, "calls")
    assert sorted(c["request_id"] for c in calls) == sorted(ids)


def test_a_detected_domain_routes_and_is_shown(cli: CliRunner, tmp_path: Path, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o", ModelBehavior(answer=GOOD_ANSWER, **TOKENS))
    config = write_config(tmp_path, config_text(server.base_url, extra='[domains]\ncode = ["big"]\n'))
    run = cli("ask", "Write a Python function that reverses a linked list.", CASCADE_CONFIG=str(config))
    assert run.code == 0, run.stderr
    [summary] = stderr_lines(run.stderr)
    assert summary.startswith("big · single model") and "domain code (" in summary
    assert server.request_count("gpt-4o") == 1 and server.request_count("gpt-4o-mini") == 0
    given = cli("ask", QUERY, "--domain", "code", "--json", CASCADE_CONFIG=str(config)).json()
    assert (given["domain"], given["domain_confidence"]) == ("code", 1.0)


@pytest.mark.parametrize("key", ["sk-SECRET123\nsk-OTHER", "sk-SECRETé99"])
def test_an_unusable_key_is_refused_before_any_call_and_never_echoed(cli: CliRunner, server: ReplayServer,
                                                                     tmp_path: Path, key: str) -> None:
    """Issue 11: the key used to leak as "unexpected ValueError: Invalid header value b'Bearer ...'"."""
    config = write_config(tmp_path, config_text(server.base_url, mini_extra='api_key_env = "OPENAI_API_KEY"'))
    for debug in ([], ["--debug"]):
        run = cli("--config", str(config), *debug, "ask", QUERY, OPENAI_API_KEY=key)
        assert run.code == 1
        assert "SECRET" not in run.stderr + run.stdout and "OTHER" not in run.stderr
        assert "unexpected" not in run.stderr and "OPENAI_API_KEY" in run.stderr
        if not debug:
            assert_one_error_line(run.stderr)
    assert server.request_count() == 0
    assert rows(cli.db, "reservations") == []


def test_each_retry_is_one_line_on_stderr(cli: CliRunner, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, status=429, fail_times=1,
                                                     retry_after=0.2))
    run = cli("ask", QUERY)
    assert run.code == 0, run.stderr
    assert stderr_lines(run.stderr)[0] == "mini: HTTP 429, retrying in 0.2 s (2 of 3)"


def test_a_retry_after_past_the_deadline_fails_at_once(cli: CliRunner, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(status=429, retry_after=100))
    server.set_behavior("gpt-4o", ModelBehavior(status=429, retry_after=100))
    run = cli("ask", QUERY)
    assert run.code == 2, run.stderr
    assert_one_error_line(run.stderr)
    assert "deadline" in run.stderr
    assert server.request_count() == 2  # one try each: no 100 s waits


def test_a_query_that_is_not_utf8_is_refused_before_any_call(cli: CliRunner, server: ReplayServer) -> None:
    """Issue 11: `printf 'caf\\xe9 ?' | cascade ask -` failed only after the provider was paid."""
    proc = subprocess.run([sys.executable, "-m", "cascadeflow_cli", "ask", "-"], cwd=cli.cwd,
                          env={**cli.env(), "PYTHONIOENCODING": "utf-8:surrogateescape"},
                          input=b"caf\xe9 ?", capture_output=True, timeout=60)
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 1, stderr
    assert_one_error_line(stderr)
    assert "UTF-8" in stderr
    assert server.request_count() == 0


@pytest.mark.usefixtures("good_mini")
def test_a_read_only_ledger_is_refused_before_any_call_for_a_user_without_budget(cli: CliRunner,
                                                                               server: ReplayServer) -> None:
    """Issue 11: without a budget nothing was written before the call, so a read-only
    ledger was found only after the provider was paid."""
    from tests.cli.support import immutable

    assert cli("ask", QUERY).code == 0  # the ledger exists
    paid = server.request_count()
    with immutable(cli.db):
        run = cli("ask", "What is the capital of Spain?")
    assert run.code == 1, run.stderr
    assert_one_error_line(run.stderr)
    assert "read-only" in run.stderr and "nothing was sent" in run.stderr
    assert server.request_count() == paid


@pytest.mark.parametrize(
    ("prompt", "completion"),
    [(10**30, 10**30), (10, float("nan")), (-1000, 5), (10, 10**13)],
    ids=["1e30-tokens", "nan-completion", "negative-prompt", "past-max-count"],
)
def test_a_usage_that_is_no_count_is_estimated_and_recorded(
    tmp_path: Path, server: ReplayServer, prompt: object, completion: object
) -> None:
    """hostile-4: a provider's 1e30 tokens made `ask` fail with "unexpected OverflowError"
    (the paid answer unprinted) and its journal entry fail every later command; a NaN or
    negative side of the usage charged that side as $0. Each side that is no count is now
    estimated from its text."""
    server.set_behavior(
        "gpt-4o-mini",
        ModelBehavior(answer=GOOD_ANSWER, prompt_tokens=prompt, completion_tokens=completion),  # type: ignore[arg-type]
    )
    path = tmp_path / "cascadeflow.toml"
    priced = "input_cost_per_million = 1.0\noutput_cost_per_million = 2.0\n"
    path.write_text(config_text(server.base_url, mini_extra=priced), encoding="utf-8")
    cli = CliRunner(tmp_path, path, tmp_path / "ledger.db")
    run = cli("ask", QUERY, "--models", "mini", "--json")
    assert run.code == 0, run.stderr
    assert run.json()["answer"] == GOOD_ANSWER  # type: ignore[index]
    [call] = rows(cli.db, "calls")
    assert 0 < call["input_tokens"] < 100 or call["input_tokens"] == prompt  # type: ignore[operator]
    estimated = -(-len(GOOD_ANSWER) // 4)  # ceil(chars / 4)
    assert call["output_tokens"] == (completion if completion == 5 else estimated)
    assert str(call["cost_source"]).endswith("+estimated-tokens")
    later = cli("logs", "--json")
    assert later.code == 0 and "unexpected" not in later.stderr, later.stderr


def _on_a_terminal(cli: CliRunner, *args: str) -> tuple[int, bytes]:
    """Run `cascade` with stdout on a pseudo-terminal; what it printed there."""
    import os
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "cascadeflow_cli", *args], cwd=cli.cwd, env=cli.env(),
                            stdout=follower, stderr=follower)
    os.close(follower)
    seen = read_terminal(leader)
    return proc.wait(30), seen


@pytest.mark.parametrize("stream", [False, True], ids=["ask", "ask-stream"])
def test_an_answer_cannot_drive_the_terminal_but_a_pipe_gets_it_raw(
    cli: CliRunner, server: ReplayServer, stream: bool
) -> None:
    """hostile-4: a provider's answer holding ESC [2J (clear screen) and ESC ]0; (set the
    title) went to the terminal raw. On a terminal it is shown escaped; a pipe still gets
    the answer byte for byte."""
    answer = "Paris\x1b[2J\x1b]0;pwned\x07 is the capital of France and the seat of its government."
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=answer))
    args = ["ask", QUERY, "--models", "mini", *(["--stream"] if stream else [])]
    code, seen = _on_a_terminal(cli, *args)
    assert code == 0, seen
    assert b"\x1b[2J" not in seen and b"\x1b]0;" not in seen and b"\x07" not in seen
    assert b"Paris\\x1b[2J\\x1b]0;pwned\\x07 is the capital" in seen
    piped = cli(*args)
    assert piped.code == 0 and answer in piped.stdout


@pytest.mark.parametrize("stream", [False, True], ids=["ask", "ask-stream"])
def test_an_answer_past_the_response_cap_fails_and_is_priced(
    cli: CliRunner, server: ReplayServer, stream: bool, tmp_path: Path
) -> None:
    from cascadeflow_cli.engine.providers.transport import MAX_RESPONSE_BYTES

    huge = "word " * (MAX_RESPONSE_BYTES // 5 + 1000)  # just past the cap, in one answer
    server.set_behavior("gpt-4o", ModelBehavior(
        answer=huge, prompt_tokens=10, completion_tokens=10, ignore_max_tokens=True))
    # 8 MiB streamed word by word takes seconds on a loaded machine: a timeout that only
    # the cap, not the clock, can end this call with
    patient = (f'[[models]]\nname = "patient"\nmodel = "openai/gpt-4o"\n'
               f'api_base = "{server.base_url}"\ntimeout = 120\n')
    config = write_config(tmp_path, config_text(server.base_url, extra_models=patient))
    run = cli("ask", QUERY, "--models", "patient", *(["--stream"] if stream else []),
              CASCADE_CONFIG=str(config))
    assert run.code == 2, run.stderr
    *_, last = stderr_lines(run.stderr)
    assert_one_error_line(last)
    assert "MiB" in last and "refused" in last
    assert server.request_count("gpt-4o") == 1  # not retried: it would answer as much again
    [failed] = rows(cli.db, "requests")
    assert failed["status"] == "error"
    [call] = rows(cli.db, "calls")
    assert call["status"] == "error" and call["cost_nusd"] > 0  # generated, so paid for
    assert "estimated" in call["cost_source"]
    assert call["output_tokens"] <= MAX_RESPONSE_BYTES // 4 + 1
    assert cli.db.stat().st_size < MAX_RESPONSE_BYTES  # not stored (twice) in the ledger


def test_a_stderr_that_cannot_be_written_does_not_stop_a_retry(cli: CliRunner,
                                                                server: ReplayServer) -> None:
    """`ask 2>/dev/full`: the retry notice's OSError ended the request mid-cascade (exit 1,
    the draft paid, the verifier never asked again). A notice never stops paid work."""
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=REFUSAL))
    server.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER, status=500, fail_times=1))
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "cascadeflow_cli", "ask", DETAILED], cwd=cli.cwd,
                              env=cli.env(), stdout=subprocess.PIPE, stderr=full, text=True, timeout=120)
    # answered and recorded; exit 1 only for the summary line stderr could not take (errors.md)
    assert done.returncode == 1 and done.stdout == LONG_ANSWER + "\n"
    assert server.request_count() == 3  # the draft, the verifier's 500, its retry
    [req] = rows(cli.db, "requests")
    assert req["status"] == "ok" and req["answer"] == LONG_ANSWER
