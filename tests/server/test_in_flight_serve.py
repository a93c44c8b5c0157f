"""`cascade serve` and calls in flight when a process dies (tests/cli/test_in_flight.py
for `ask`): the server itself killed mid-request, and a server that outlives an `ask`
killed mid-call. Real processes: `cascade serve` on a SQLite ledger, the official openai
SDK as its client, the loopback replay server as the provider."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.cli.support import wait_until
from tests.cli.test_in_flight import HELD, MAX_TOKENS, PRICED, Ledger, Q, _calls_of, _estimate, kill_in_flight
from tests.conftest import GOOD_ANSWER, CliRunner, config_text
from tests.server.test_serve_cmd import start

pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")
openai = pytest.importorskip("openai")


@pytest.fixture
def ledger(tmp_path: Path, server: ReplayServer) -> Ledger:
    path = tmp_path / "cascadeflow.toml"
    path.write_text(config_text(server.base_url, mini_extra=PRICED, big_extra=PRICED, chain='["mini"]',
                                extra=f"max_tokens = {MAX_TOKENS}") + '\n[budgets]\nmode = "block"\n')
    ledger = Ledger(CliRunner(tmp_path, path, tmp_path / "ledger.db"), str(tmp_path / "ledger.db"))
    assert ledger("budget", "set", "alice", "--daily", "5").code == 0
    return ledger


def _key(ledger: Ledger) -> str:
    run = ledger("key", "create", "alice", "--json")
    assert run.code == 0, run.stderr
    return str(run.json()["key"])  # type: ignore[index]


def _ask(url: str, key: str, errors: list[BaseException]) -> None:
    try:
        openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=60).chat.completions.create(
            model="cascade", messages=[{"role": "user", "content": Q}])
    except Exception as exc:  # the server was killed under it
        errors.append(exc)


def test_a_serve_process_killed_mid_request_leaves_the_call_for_the_next_command(
    ledger: Ledger, server: ReplayServer
) -> None:
    key = _key(ledger)
    server.set_behavior("gpt-4o-mini", HELD)
    proc, url = start(ledger.runner)
    errors: list[BaseException] = []
    try:
        client = threading.Thread(target=_ask, args=(url, key, errors))
        client.start()
        wait_until(lambda: server.request_count("gpt-4o-mini") > 0 or proc.poll() is not None, timeout=60)
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        client.join(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert errors  # the client saw the server go
    assert ledger("budget", "show", "alice").code == 0  # the next command records it
    request_row, [call] = _calls_of(ledger, Q)
    assert (request_row["user"], request_row["status"]) == ("alice", "interrupted")
    assert call["error_type"] == "CallInFlight"
    assert request_row["cost_nusd"] == _estimate(call) and not ledger.rows("reservations")


def test_a_running_server_records_an_ask_killed_mid_call(ledger: Ledger, server: ReplayServer) -> None:
    """The server opened the ledger before the `ask` died, so it never replays it at
    open; its budget checks found the dead process's reservation and dropped it: that
    call was counted in no budget until some other command opened the ledger. Now the
    reservation stays counted while the dead process's log waits, and the server records
    the log before its next request, the row taking the reservation's place."""
    key = _key(ledger)
    proc, url = start(ledger.runner)
    try:
        server.set_behavior("gpt-4o-mini", HELD)
        kill_in_flight(ledger, server, "gpt-4o-mini", "ask", Q, "--user", "alice")
        [held] = ledger.rows("reservations")
        assert not ledger.rows("requests")
        server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
        client = openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=30)
        client.chat.completions.create(model="cascade", messages=[{"role": "user", "content": "first"}])
        # its budget check met the dead process's reservation: kept (counted), not dropped
        assert [r["id"] for r in ledger.rows("reservations")] == [held["id"]]
        client.chat.completions.create(model="cascade", messages=[{"role": "user", "content": "second"}])
        request_row, [call] = _calls_of(ledger, Q)  # recorded before the second was paid for
        assert (request_row["status"], call["error_type"]) == ("interrupted", "CallInFlight")
        assert request_row["cost_nusd"] == _estimate(call)
        assert not ledger.rows("reservations")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
