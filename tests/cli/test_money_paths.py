"""Paths where a provider answered (and so billed) and the ledger must still hold the
call at a price (hostile-23): through the real CLI against the replay server."""

from __future__ import annotations

from pathlib import Path

import pytest

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.cli.support import DETAILED, LONG_ANSWER, REFUSAL
from tests.conftest import CliRunner, config_text, ledger_rows

LITELLM = 'client = "litellm"\nmax_retries = 0\n'


@pytest.mark.parametrize("cut", ["close_after", "reset_after"])
def test_a_litellm_stream_cut_mid_answer_is_charged_what_it_generated(
    tmp_path: Path, server: ReplayServer, cut: str
) -> None:
    # a FIN (or RST) after two chunks of a litellm stream: litellm raised its
    # MidStreamFallbackError (status_code 500), said "provider returned HTTP 500", and the
    # call whose first words were printed was recorded with 0 tokens at $0
    config = tmp_path / "cascadeflow.toml"
    config.write_text(config_text(server.base_url, mini_extra=LITELLM, big_extra=LITELLM))
    cli = CliRunner(tmp_path, config, tmp_path / "ledger.db")
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
