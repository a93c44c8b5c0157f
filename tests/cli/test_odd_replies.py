"""A provider that answers with valid JSON of the wrong shape (hostile-16): a finish reason
that is not text, a lone surrogate escape in the answer or in an error message. Each call
was paid; the answer must reach the user and the call the ledger at its own price, not an
"unexpected SomeError" that lost the answer and charged the call its upper bound."""

from __future__ import annotations

from typing import Any

import pytest

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.cli.support import LONG_ANSWER, rows, stderr_lines
from tests.conftest import CliRunner, assert_one_error_line


def _finish_seven(body: dict[str, Any]) -> dict[str, Any]:
    for choice in body.get("choices", ()):
        if choice.get("finish_reason"):
            choice["finish_reason"] = 7
    return body


def _lone_surrogate(body: dict[str, Any]) -> dict[str, Any]:
    for choice in body.get("choices", ()):
        place = choice.get("message") or choice.get("delta") or {}
        if place.get("content"):
            place["content"] = "\ud800" + place["content"]  # sent as a \ud800 escape
    if "error" in body:
        body["error"]["message"] = "overloaded \udfff now"
    return body


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("reshape", [_finish_seven, _lone_surrogate])
def test_an_odd_answer_is_shown_and_recorded_at_its_price(
    cli: CliRunner, server: ReplayServer, stream: bool, reshape: Any
) -> None:
    server.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER, prompt_tokens=10,
                                                completion_tokens=100, reshape=reshape))
    done = cli("ask", "Explain photosynthesis.", "--models", "big", *(["--stream"] if stream else []))
    assert done.code == 0, done.stderr
    assert "unexpected" not in done.stderr and "Photosynthesis happens in" in done.stdout
    (request,) = rows(cli.db, "requests")
    (call,) = rows(cli.db, "calls")
    assert request["status"] == "ok" and call["status"] == "ok"
    assert (call["input_tokens"], call["output_tokens"]) == (10, 100)  # its own usage, not the bound
    assert call["finish_reason"] in (None, "stop") or reshape is _lone_surrogate
    if reshape is _lone_surrogate:
        assert str(call["answer"]).startswith("\ufffd")


def test_an_error_message_holding_a_lone_surrogate_is_one_line_and_recorded(
    cli: CliRunner, server: ReplayServer
) -> None:
    server.set_behavior("gpt-4o", ModelBehavior(status=500, reshape=_lone_surrogate))
    done = cli("ask", "Explain photosynthesis.", "--models", "big")
    assert done.code == 2, done.stderr
    assert_one_error_line(stderr_lines(done.stderr)[-1])
    assert "overloaded \ufffd now" in done.stderr
    (request,) = rows(cli.db, "requests")
    assert request["status"] == "error"
