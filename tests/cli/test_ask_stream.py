"""`cascade ask --stream`: the same streaming as `cascade serve` (engine/streaming.py)."""

from __future__ import annotations

import re

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.cli.support import DETAILED, LONG_ANSWER, QUERY, REFUSAL
from tests.conftest import GOOD_ANSWER, CliRunner, ledger_rows


def test_an_accepted_draft_is_printed_once_judged(cli: CliRunner, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    run = cli("ask", "--stream", QUERY)
    assert run.code == 0, run.stderr
    assert run.stdout == GOOD_ANSWER + "\n"
    assert not server.requests[0].get("stream")  # a draft is asked for whole


def test_an_escalated_answer_streams_from_the_verifier(cli: CliRunner, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=REFUSAL))
    server.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER))
    run = cli("ask", "--stream", DETAILED)
    assert run.code == 0, run.stderr
    assert run.stdout == LONG_ANSWER + "\n" and REFUSAL not in run.stdout
    assert server.requests[-1]["stream"] is True
    [req] = ledger_rows(cli.db, "requests")
    assert req["status"] == "ok" and req["answer"] == LONG_ANSWER and req["cost_nusd"] > 0


def test_stream_with_json_prints_the_one_object(cli: CliRunner, server: ReplayServer) -> None:
    run = cli("ask", "--stream", "--json", QUERY)
    assert run.code == 0 and run.json()["answer"]  # type: ignore[index]


def test_a_reset_after_the_finish_reason_is_a_complete_answer(
    cli: CliRunner, server: ReplayServer
) -> None:
    # the whole answer, finish_reason "stop" and usage arrived; only `data: [DONE]` was lost
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=REFUSAL))
    server.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER, reset_before_done=True))
    run = cli("ask", "--stream", DETAILED)
    assert run.code == 0, run.stderr
    assert run.stdout == LONG_ANSWER + "\n"
    [req] = ledger_rows(cli.db, "requests")
    assert req["status"] == "ok" and req["answer"] == LONG_ANSWER and req["cost_nusd"] > 0


def test_a_reset_before_the_finish_reason_is_still_an_error(cli: CliRunner, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=REFUSAL))
    server.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER, reset_after=2))
    run = cli("ask", "--stream", DETAILED)
    assert run.code == 2, run.stderr
    [req] = ledger_rows(cli.db, "requests")
    assert req["status"] == "error"
    # the server was reached and answered part of it: said so, not "cannot reach" (hostile-6)
    *_, last = run.stderr.splitlines()
    assert re.fullmatch(
        rf"error: big: the connection to {re.escape(server.base_url)}"
        r" was reset after \d+ bytes of the answer",
        last,
    ), run.stderr
    assert "cannot reach" not in run.stderr
    big = [c for c in ledger_rows(cli.db, "calls") if c["model"] == "big"]
    assert big and all(c["status"] == "error" for c in big) and big[-1]["cost_nusd"] > 0  # partial priced


def test_a_reset_mid_answer_without_streaming_says_what_happened(
    cli: CliRunner, server: ReplayServer
) -> None:
    server.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER, reset_after=100))
    run = cli("ask", QUERY, "--models", "big")
    assert run.code == 2, run.stderr
    *_, last = run.stderr.splitlines()
    assert last == f"error: big: the connection to {server.base_url} was reset after 100 bytes of the answer"
    [req] = ledger_rows(cli.db, "requests")
    assert req["status"] == "error"


def test_a_stream_closed_cleanly_mid_answer_is_an_error(cli: CliRunner, server: ReplayServer) -> None:
    # a FIN at a chunk boundary, before finish_reason: once taken for a complete answer
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=REFUSAL))
    server.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER, close_after=2))
    run = cli("ask", "--stream", DETAILED)
    assert run.code == 2, run.stderr
    assert "the stream ended before the answer did" in run.stderr
    [req] = ledger_rows(cli.db, "requests")
    assert req["status"] == "error"
    big = [c for c in ledger_rows(cli.db, "calls") if c["model"] == "big"]
    assert [c["status"] for c in big] == ["error"] and big[0]["cost_nusd"] > 0  # what was sent is paid


def test_a_stdout_that_fails_mid_stream_keeps_the_final_models_call(cli: CliRunner,
                                                                    server: ReplayServer) -> None:
    """`ask --stream > /dev/full` (or a pipe whose reader left): the OSError of stdout went
    through the provider untouched, and the final model's call, streamed and paid, was in
    no ledger (the request showed the draft only), while the error line said the answer
    was recorded. Now the reader leaving closes the stream, and what came is priced."""
    import subprocess
    import sys

    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=REFUSAL))
    server.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER))
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "cascadeflow_cli", "ask", "--stream", DETAILED],
                              cwd=cli.cwd, env=cli.env(), stdout=full, stderr=subprocess.PIPE, text=True,
                              timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1].startswith("error: cannot write the output: No space left on device")
    [req] = ledger_rows(cli.db, "requests")
    calls = ledger_rows(cli.db, "calls")
    assert [c["model"] for c in calls] == ["mini", "big"], calls
    assert req["status"] == "interrupted" and calls[1]["cost_nusd"] > 0
    assert req["cost_nusd"] == sum(c["cost_nusd"] for c in calls)
    assert ledger_rows(cli.db, "reservations") == []


def test_an_escalation_to_a_stream_with_no_answer_is_an_error_not_an_empty_answer(
    cli: CliRunner, server: ReplayServer
) -> None:
    # the verifier's chunks held no choices, then [DONE]: it printed nothing and exit 0
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=REFUSAL))
    server.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER, empty_stream="no choices"))
    run = cli("ask", "--stream", DETAILED)
    assert run.code == 2, run.stderr
    assert run.stderr.splitlines()[-1] == "error: big: provider streamed an empty answer (no choices)"
    [req] = ledger_rows(cli.db, "requests")
    assert req["status"] == "error"
