"""Paths where a provider answered (and so billed) and the ledger must still hold the
call at a price (hostile-23): through the real CLI against the replay server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.cli.support import DETAILED, LONG_ANSWER, REFUSAL
from tests.conftest import CliRunner, assert_one_error_line, config_text, ledger_rows

LITELLM = 'client = "litellm"\nmax_retries = 0\n'


def _litellm_cli(tmp_path: Path, server: ReplayServer) -> CliRunner:
    """`cascade` with both models on the litellm client, no retries, against ``server``."""
    config = tmp_path / "cascadeflow.toml"
    config.write_text(config_text(server.base_url, mini_extra=LITELLM, big_extra=LITELLM))
    return CliRunner(tmp_path, config, tmp_path / "ledger.db")


@pytest.mark.parametrize("cut", ["close_after", "reset_after"])
def test_a_litellm_stream_cut_mid_answer_is_charged_what_it_generated(
    tmp_path: Path, server: ReplayServer, cut: str
) -> None:
    # a FIN (or RST) after two chunks of a litellm stream: litellm raised its
    # MidStreamFallbackError (status_code 500), said "provider returned HTTP 500", and the
    # call whose first words were printed was recorded with 0 tokens at $0
    cli = _litellm_cli(tmp_path, server)
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=REFUSAL))
    server.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER, **{cut: 2}))
    run = cli("ask", "--stream", DETAILED)
    assert run.code == 2, run.stderr
    assert run.stdout and LONG_ANSWER.startswith(run.stdout.strip())  # part of it was shown
    *_, last = run.stderr.splitlines()
    assert last.startswith("error: big: the stream broke mid-answer"), run.stderr
    assert "HTTP 500" not in run.stderr
    big = [c for c in ledger_rows(cli.db, "calls") if c["model"] == "big"]
    assert [c["status"] for c in big] == ["error"]
    assert big[0]["output_tokens"] > 0 and big[0]["cost_nusd"] > 0, big  # what was sent is paid
    [req] = ledger_rows(cli.db, "requests")
    assert req["cost_nusd"] == sum(c["cost_nusd"] for c in ledger_rows(cli.db, "calls"))


def _error_at_200(body: dict[str, Any]) -> dict[str, Any]:
    return {"error": {"message": "overloaded", "type": "server_error"}}  # sent with HTTP 200


def _fractional_usage(body: dict[str, Any]) -> dict[str, Any]:
    if isinstance(body.get("usage"), dict):
        body["usage"]["prompt_tokens"] = 10.5
    return body


@pytest.mark.parametrize("reshape", [_error_at_200, _fractional_usage])
def test_a_litellm_200_that_is_no_chat_completion_is_charged_its_estimate(
    tmp_path: Path, server: ReplayServer, reshape: Any
) -> None:
    # litellm files a 200 body it cannot turn into a chat completion under a status it
    # makes up (422, 500): read as "not sent, $0", but the provider answered and billed
    cli = _litellm_cli(tmp_path, server)
    server.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER, reshape=reshape))
    run = cli("ask", "--models", "big", DETAILED)
    assert run.code == 2, run.stderr
    *_, last = run.stderr.splitlines()
    assert_one_error_line(last)
    assert last.startswith("error: big: provider answered with a malformed chat completion"), run.stderr
    [call] = ledger_rows(cli.db, "calls")
    assert call["status"] == "error" and str(call["cost_source"]).endswith("+estimated-unanswered"), call
    assert int(str(call["cost_nusd"])) > 0  # the provider may bill it: charged an estimate
    [req] = ledger_rows(cli.db, "requests")
    assert req["status"] == "error" and req["cost_nusd"] == call["cost_nusd"]
    assert ledger_rows(cli.db, "reservations") == []  # settled to the charge
