"""A client that hangs up while the cascade runs is not paid for: a real `cascade serve`
app (uvicorn on loopback, the real Runner and ledger file), the replay server as a slow
provider, and a raw socket that closes mid-request (the SDK cannot hang up mid-call).

Left during the draft: the verifier is never asked; the draft's call, closed in flight,
is recorded at the in-flight estimate (engine/attempts.py). Left during the verifier's
whole answer: that call is closed and recorded the same way. Either way the request is
'interrupted', its reservation is settled and the spend is the ledger's sum."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from cascadeflow_cli.engine.attempts import IN_FLIGHT, IN_FLIGHT_SOURCE
from cascadeflow_cli.ledger.budgets import BudgetConfig, set_budget
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from cascadeflow_cli.server import ServeSettings, build_app
from cascadeflow_cli.server.app import SHUTDOWN_REASON, cut_streams
from tests.cli.support import DETAILED, LONG_ANSWER, REFUSAL
from tests.conftest import ledger_rows
from tests.server.conftest import Stack, ThreadServer, make_key, write_config

SLOW_S = 2.0  # the slow model's latency: a request recorded well before it was not waited for


@pytest.fixture(params=["bridged", "threads"])
def budgeted(request: pytest.FixtureRequest, stack_factory: object, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """A serve stack on a block-mode budget, its cascade in the request's task (bridged,
    the SQLite default) or on pool threads (as without greenlet, and on PostgreSQL)."""
    if request.param == "threads":
        from cascadeflow_cli import server

        monkeypatch.setattr(server, "_bridge", lambda: None)
    stack: Stack = stack_factory(extra='\n[budgets]\nmode = "block"\n')  # type: ignore[operator]
    ledger = open_ledger(stack.db)
    set_budget(ledger, "alice", BudgetConfig(daily=Decimal("5")))
    ledger.close()
    return stack


@pytest.fixture(params=["bridged", "threads"])
def on_litellm(
    request: pytest.FixtureRequest, stack_factory: object, monkeypatch: pytest.MonkeyPatch
) -> Stack:
    """``budgeted`` with both models called through litellm (its real HTTP path)."""
    if request.param == "threads":
        from cascadeflow_cli import server

        monkeypatch.setattr(server, "_bridge", lambda: None)
    from cascadeflow_cli.engine.providers.litellm_provider import import_litellm

    import_litellm()  # its seconds of import are not the hang-up's to wait for
    forced = 'client = "litellm"'
    stack: Stack = stack_factory(  # type: ignore[operator]
        extra='\n[budgets]\nmode = "block"\n', mini_extra=forced, big_extra=forced)
    ledger = open_ledger(stack.db)
    set_budget(ledger, "alice", BudgetConfig(daily=Decimal("5")))
    ledger.close()
    return stack


def send(stack: Stack, *, stream: bool = False, version: str = "1.1") -> socket.socket:
    """A chat request for the cascade on a raw connection, left open."""
    host, port = stack.url.removeprefix("http://").removesuffix("/v1").split(":")
    messages = [{"role": "user", "content": DETAILED}]
    body = json.dumps({"model": "cascade", "stream": stream, "messages": messages})
    sock = socket.create_connection((host, int(port)), timeout=20)
    sock.sendall(
        f"POST /v1/chat/completions HTTP/{version}\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {stack.key}\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode()
    )
    return sock


def wait_until(check: object, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def hang_up_once_asked(stack: Stack, model: str, *, stream: bool = False) -> float:
    """Send, hang up once the replay server has ``model``'s request; the time of the hang-up."""
    sock = send(stack, stream=stream)
    wait_until(lambda: stack.replay.request_count(model) == 1)
    sock.close()
    return time.monotonic()


def settled(stack: Stack) -> Iterator[dict[str, object]]:
    """The one request, once recorded; its reservation settled and the spend its cost."""
    wait_until(lambda: ledger_rows(stack.db, "requests"))
    [req] = ledger_rows(stack.db, "requests")
    assert ledger_rows(stack.db, "reservations") == []
    ledger = open_ledger(stack.db)
    try:
        assert ledger.reserved_spend("alice") == 0
        calls = ledger_rows(stack.db, "calls")
        assert ledger.total_spend("alice") == req["cost_nusd"] == sum(c["cost_nusd"] for c in calls) > 0
    finally:
        ledger.close()
    yield req
    yield from calls


def hang_up_during_the_verifier(stack: Stack, *, stream: bool = False) -> list[dict[str, object]]:
    """The draft refused at once, the verifier slow: hang up once it is asked. The request,
    recorded interrupted before the verifier's answer was due, then its calls."""
    stack.replay.set_behavior("gpt-4o-mini", ModelBehavior(answer=REFUSAL))
    stack.replay.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER, latency_s=SLOW_S))
    left = hang_up_once_asked(stack, "gpt-4o", stream=stream)
    rows = list(settled(stack))
    assert time.monotonic() - left < SLOW_S  # its call was closed, not waited for
    assert rows[0]["status"] == "interrupted" and rows[0]["error"] == "the client disconnected"
    return rows


def assert_closed_in_flight(call: dict[str, object], role: str) -> None:
    """A whole-answer call closed by us: charged its worst case (prompt + max_tokens)."""
    assert call["role"] == role and call["status"] == "error" and call["error"] == IN_FLIGHT
    assert str(call["cost_source"]).endswith(IN_FLIGHT_SOURCE) and call["output_tokens"] == call["max_tokens"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_client_gone_during_the_draft_never_gets_the_verifier_asked(budgeted: Stack, stream: bool) -> None:
    stack = budgeted
    stack.replay.set_behavior("gpt-4o-mini", ModelBehavior(answer=REFUSAL, latency_s=SLOW_S))
    stack.replay.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER))
    left = hang_up_once_asked(stack, "gpt-4o-mini", stream=stream)
    req, draft = settled(stack)
    assert time.monotonic() - left < SLOW_S  # the draft's call was closed, not waited for
    assert req["status"] == "interrupted" and req["error"] == "the client disconnected"
    assert_closed_in_flight(draft, "draft")
    time.sleep(SLOW_S)  # past the draft's answer: nothing more is asked
    assert stack.replay.request_count("gpt-4o") == 0
    assert stack.log and " 499 " in stack.log[-1]


def test_a_client_gone_during_the_verifier_s_whole_answer_has_that_call_closed_and_charged(
    budgeted: Stack,
) -> None:
    _, draft, verifier = hang_up_during_the_verifier(budgeted)
    assert draft["role"] == "draft" and draft["status"] == "ok" and draft["cost_nusd"] > 0  # paid, kept
    assert "estimated" not in str(draft["cost_source"])  # the draft's own usage
    assert_closed_in_flight(verifier, "verifier")


def test_a_streamed_client_gone_before_the_verifier_s_first_token_is_recorded_at_the_prompt(
    budgeted: Stack,
) -> None:
    """The verifier's stream was opened (no byte yet): closed at once, the rule of a stream
    we closed before any text (the prompt is charged; no more is written)."""
    _, draft, verifier = hang_up_during_the_verifier(budgeted, stream=True)
    assert draft["status"] == "ok"
    assert verifier["role"] == "verifier" and verifier["output_tokens"] == 0 and verifier["input_tokens"] > 0
    assert str(verifier["cost_source"]).endswith(IN_FLIGHT_SOURCE)


def test_a_client_that_stays_gets_its_answer(budgeted: Stack) -> None:
    stack = budgeted
    stack.replay.set_behavior("gpt-4o-mini", ModelBehavior(answer=REFUSAL, latency_s=0.3))
    stack.replay.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER, latency_s=0.3))
    client = stack.client()
    whole = client.chat.completions.create(model="cascade", messages=[{"role": "user", "content": DETAILED}])
    assert whole.choices[0].message.content == LONG_ANSWER
    chunks = list(client.chat.completions.create(
        model="cascade", messages=[{"role": "user", "content": DETAILED}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == LONG_ANSWER
    requests = ledger_rows(stack.db, "requests")
    assert [r["status"] for r in requests] == ["ok", "ok"] and all(r["escalated"] for r in requests)
    assert ledger_rows(stack.db, "reservations") == []


def test_a_stream_cut_by_a_shutdown_before_its_first_byte_is_a_503_recorded_interrupted(
    tmp_path: Path, server: ReplayServer
) -> None:
    """`cut_streams` (the end of a shutdown's grace) during the draft: the client, still
    there, gets a 503 (it was an exception the event loop raised on), no verifier is asked."""
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=REFUSAL, latency_s=SLOW_S))
    config = write_config(tmp_path, server)
    db = tmp_path / "ledger.db"
    key = make_key(config, db)
    app = build_app(ServeSettings(str(config), str(db), concurrency=8), write_log=lambda line: None)
    with ThreadServer(app) as srv:
        url = f"http://127.0.0.1:{srv.port}/v1/chat/completions"
        body = {"model": "cascade", "stream": True, "messages": [{"role": "user", "content": DETAILED}]}
        got: list[httpx.Response] = []
        asking = threading.Thread(target=lambda: got.append(
            httpx.post(url, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=20)))
        asking.start()
        wait_until(lambda: server.request_count("gpt-4o-mini") == 1)
        assert cut_streams(app) == 1
        asking.join(20)
    [response] = got
    assert response.status_code == 503 and response.json()["error"]["message"] == SHUTDOWN_REASON
    [req] = ledger_rows(db, "requests")
    assert req["status"] == "interrupted" and req["error"] == SHUTDOWN_REASON
    assert server.request_count("gpt-4o") == 0 and ledger_rows(db, "reservations") == []


def test_a_client_gone_during_a_litellm_call_has_that_call_closed_and_charged_in_flight(
    on_litellm: Stack,
) -> None:
    """litellm's blocking call cannot be stopped: a caller that may leave is asked through
    its async path, whose task the hang-up cancels (engine/providers/litellm_provider.py)."""
    stack = on_litellm
    _, draft, verifier = hang_up_during_the_verifier(stack)
    wait_until(lambda: stack.replay.abandoned == 1, within_s=SLOW_S)  # the provider saw it close
    assert draft["status"] == "ok" and str(draft["cost_source"]).startswith("litellm")
    assert_closed_in_flight(verifier, "verifier")
    assert str(verifier["cost_source"]).startswith("litellm")
    assert stack.log and " 499 " in stack.log[-1]


def test_a_client_that_stays_gets_its_litellm_answer(on_litellm: Stack) -> None:
    stack = on_litellm
    stack.replay.set_behavior("gpt-4o-mini", ModelBehavior(answer=REFUSAL, latency_s=0.2))
    stack.replay.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER, latency_s=0.2))
    whole = stack.client().chat.completions.create(
        model="cascade", messages=[{"role": "user", "content": DETAILED}])
    assert whole.choices[0].message.content == LONG_ANSWER
    [req] = ledger_rows(stack.db, "requests")
    assert req["status"] == "ok" and req["escalated"] and stack.replay.abandoned == 0
