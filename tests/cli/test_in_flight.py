"""A call in flight when its process dies (kill -9, the OOM killer, a closed terminal):
the request was sent, the provider may bill it, and nothing had reached the ledger. It
was lost: the budget reservation expired with its pid and the spend vanished from
budgets and reports, so `kill -9` after each ask spent without being counted.

Each call is now journaled ahead before it is sent (engine/attempts.py,
journal.write_in_flight); the next command records it as an interrupted request, the call
charged its worst case (prompt + max_tokens) with ``cost_source`` ``config+in-flight``,
once, whoever recovers it and however often. Real processes against the loopback replay
server, which holds the answer (``latency_s``) while the test kills the client.
"""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from cascadeflow_cli.ledger import journal
from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.cli.support import kill_9_when, run_together
from tests.conftest import GOOD_ANSWER, CliRunner, Run, config_text
from tests.pg_fixtures import table_rows

Q = "What is the capital of France?"
PRICED = "input_cost_per_million = 1.0\noutput_cost_per_million = 2.0\n"  # 1,000 / 2,000 nUSD a token
MAX_TOKENS = 1000
HELD = ModelBehavior(answer=GOOD_ANSWER, latency_s=30)  # in flight until the client is killed


class Ledger:
    """``cascade`` on one ledger, a SQLite file or a PostgreSQL database."""

    def __init__(self, runner: CliRunner, location: str) -> None:
        self.runner, self.location = runner, location

    def __call__(self, *args: str) -> Run:
        return self.runner(*args, CASCADE_DB=self.location)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return self.runner.popen(*args, CASCADE_DB=self.location)

    def rows(self, table: str) -> list[dict[str, object]]:
        return table_rows(self.location, table)


def _ledger(tmp_path: Path, server: ReplayServer, location: str, extra: str = "") -> Ledger:
    path = tmp_path / "cascadeflow.toml"
    path.write_text(config_text(server.base_url, mini_extra=PRICED, big_extra=PRICED,
                                extra=f"max_tokens = {MAX_TOKENS}") + extra)
    ledger = Ledger(CliRunner(tmp_path, path, tmp_path / "ledger.db"), location)
    assert ledger("budget", "show", "default").code == 0  # the ledger exists before the kill
    return ledger


@pytest.fixture
def sqlite_ledger(tmp_path: Path, server: ReplayServer) -> Ledger:
    return _ledger(tmp_path, server, str(tmp_path / "ledger.db"))


def kill_in_flight(ledger: Ledger, server: ReplayServer, model: str, *args: str, calls: int = 1) -> None:
    """`cascade ARGS` killed with SIGKILL once ``calls`` of its calls to ``model`` reached
    the provider."""
    before = server.request_count(model)
    kill_9_when(ledger.popen(*args), lambda: server.request_count(model) >= before + calls)


def _estimate(call: dict[str, object]) -> int:
    """What a call in flight is charged at $1 / $2 per million tokens."""
    assert call["output_tokens"] == call["max_tokens"] == MAX_TOKENS and int(call["input_tokens"]) > 0  # type: ignore[call-overload]
    return int(call["input_tokens"]) * 1000 + MAX_TOKENS * 2000  # type: ignore[call-overload]


def _calls_of(ledger: Ledger, query: str) -> tuple[dict[str, object], list[dict[str, object]]]:
    [request] = [r for r in ledger.rows("requests") if r["query"] == query]
    calls = sorted((c for c in ledger.rows("calls") if c["request_id"] == request["id"]),
                   key=lambda c: int(c["seq"]))  # type: ignore[call-overload]
    return request, calls


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_mid_call_is_recorded_once_estimated_and_counted(
    tmp_path: Path, server: ReplayServer, backend: str, request: pytest.FixtureRequest
) -> None:
    location = (str(tmp_path / "ledger.db") if backend == "sqlite"
                else str(request.getfixturevalue("pg_ledger_url")))
    ledger = _ledger(tmp_path, server, location, '\n[budgets]\nmode = "block"\n')
    assert ledger("budget", "set", "default", "--daily", "0.003").code == 0
    server.set_behavior("gpt-4o-mini", HELD)
    kill_in_flight(ledger, server, "gpt-4o-mini", "ask", Q, "--models", "mini")
    assert not ledger.rows("requests")  # nothing reached the ledger: only the journal has it

    # two commands at once both find the dead process's log: one row, counted once
    both = run_together(ledger.runner, ["budget", "show", "default", "--json"],
                        ["budget", "show", "default", "--json"], CASCADE_DB=location)
    assert [r.code for r in both] == [0, 0], [r.stderr for r in both]
    assert ledger("usage", "--json").code == 0  # and again: nothing more

    request_row, [call] = _calls_of(ledger, Q)
    cost = _estimate(call)
    assert (request_row["status"], call["status"]) == ("interrupted", "error")
    assert call["error_type"] == "CallInFlight"
    assert call["cost_source"] == "config+in-flight" and "in flight" in str(call["error"])
    assert request_row["cost_nusd"] == call["cost_nusd"] == cost
    assert request_row["model"] == "mini" and not ledger.rows("reservations")
    if backend == "sqlite":
        assert journal.pending(Path(location)) == []

    spent = Decimal(cost) / 10**9
    for run in both:  # each saw the request recorded, neither twice
        [daily] = run.json()["windows"]  # type: ignore[index]
        assert Decimal(str(daily["spent"])) == round(spent, 6), daily
    usage = ledger("usage", "--json").json()
    assert Decimal(str(usage["total"]["cost"])) == spent, usage  # type: ignore[index]
    exported = [json.loads(line) for line in ledger("export", "--jsonl").stdout.splitlines()]
    assert [(e["request_status"], e["cost_source"], Decimal(str(e["cost"]))) for e in exported] == [
        ("interrupted", "config+in-flight", spent)]

    # the budget counts it: a second request of that worst case would cross $0.003
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    blocked = ledger("ask", Q, "--models", "mini")
    assert blocked.code == 3, blocked.stderr
    assert "blocked" in blocked.stderr


def test_a_verifier_in_flight_after_a_paid_draft_keeps_both(
    sqlite_ledger: Ledger, server: ReplayServer
) -> None:
    """The draft answered (paid, refused by the check), the verifier in flight: the row
    holds the draft's real cost and the verifier's estimate."""
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer="I'm sorry, but I can't help with that.",
                                                     prompt_tokens=100, completion_tokens=100))
    server.set_behavior("gpt-4o", HELD)
    kill_in_flight(sqlite_ledger, server, "gpt-4o", "ask", Q)
    assert sqlite_ledger("logs", "--json").code == 0  # the next command records it
    request_row, calls = _calls_of(sqlite_ledger, Q)
    assert [(c["role"], c["status"], c["error_type"]) for c in calls] == [
        ("draft", "ok", None), ("verifier", "error", "CallInFlight")]
    assert calls[0]["cost_nusd"] == 300_000 and calls[1]["cost_nusd"] == _estimate(calls[1])
    assert request_row["cost_nusd"] == 300_000 + _estimate(calls[1])
    assert (request_row["status"], request_row["model"]) == ("interrupted", "big")
    assert request_row["escalated"] == 1


def test_a_shadow_call_in_flight_when_the_process_dies_is_recorded_once(
    tmp_path: Path, server: ReplayServer
) -> None:
    """The answer recorded, its shadow verification in flight: the process killed (or
    exiting after its wait) lost the shadow call, billed."""
    ledger = _ledger(tmp_path, server, str(tmp_path / "ledger.db"), "\n[quality]\nshadow_rate = 1.0\n")
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, prompt_tokens=100,
                                                     completion_tokens=100))
    server.set_behavior("gpt-4o", HELD)
    kill_in_flight(ledger, server, "gpt-4o", "ask", Q)
    for _ in range(2):  # recorded by the first, nothing more by the second
        assert ledger("budget", "show", "default").code == 0
    request_row, calls = _calls_of(ledger, Q)
    assert [(c["role"], c["status"], c["error_type"]) for c in calls] == [
        ("draft", "ok", None), ("shadow", "error", "CallInFlight")]
    assert calls[1]["cost_source"] == "config+in-flight"
    assert request_row["status"] == "ok" and request_row["cost_nusd"] == 300_000 + _estimate(calls[1])
    [label] = ledger.rows("quality_labels")
    assert label["source"] == "shadow" and label["status"] == "error" and label["correct"] is None
    assert not ledger.rows("reservations")


def test_a_sample_call_in_flight_joins_the_draft_already_answered(
    tmp_path: Path, server: ReplayServer
) -> None:
    """`consistency_samples = 3` from a provider that ignores `n`: the draft's first call
    answered, the second (a sample) in flight at the kill."""
    ledger = _ledger(tmp_path, server, str(tmp_path / "ledger.db"), "\n[quality]\nconsistency_samples = 3\n")
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, prompt_tokens=100,
                                                     completion_tokens=100, honor_n=False, latency_s=1.0))
    kill_in_flight(ledger, server, "gpt-4o-mini", "ask", Q, calls=2)
    assert ledger("logs").code == 0
    request_row, calls = _calls_of(ledger, Q)
    assert [(c["role"], c["status"], c["error_type"]) for c in calls] == [
        ("draft", "ok", None), ("sample", "error", "CallInFlight")]
    assert calls[0]["cost_nusd"] == 300_000
    assert request_row["cost_nusd"] == 300_000 + _estimate(calls[1])
    assert request_row["status"] == "interrupted" and request_row["model"] == "mini"
