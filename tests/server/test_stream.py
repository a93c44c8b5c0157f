"""`"stream": true`: an accepted draft is sent whole, in chunks, after the validator has
judged it; an escalated request streams the verifier's tokens as they arrive; a client
that leaves mid-stream gets its partial answer priced, recorded and its reservation
settled; the official openai SDK reads all of it."""

from __future__ import annotations

import json
import socket
import time
from decimal import Decimal

import httpx
import pytest

from cascadeflow_cli.ledger.budgets import BudgetConfig, set_budget
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.replay.server import ModelBehavior
from tests.cli.support import DETAILED, LONG_ANSWER, QUERY, REFUSAL
from tests.conftest import GOOD_ANSWER, ledger_rows
from tests.server.conftest import Stack


def stream(stack: Stack, query: str = QUERY, model: str = "cascade", **kw: object):
    return stack.client().chat.completions.with_streaming_response.create(
        model=model, messages=[{"role": "user", "content": query}], stream=True, **kw
    )


def first_deltas(stack: Stack, count: int) -> list[str]:
    """The text of the first ``count`` content chunks of a streamed request to ``big``;
    then the client hangs up."""
    body = {"model": "big", "stream": True, "messages": [{"role": "user", "content": DETAILED}]}
    got: list[str] = []
    headers = {"Authorization": f"Bearer {stack.key}"}
    with httpx.stream("POST", f"{stack.url}/chat/completions", json=body, timeout=20, headers=headers) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and (
                content := json.loads(line[6:])["choices"][0]["delta"].get("content")
            ):
                got.append(content)
                if len(got) == count:
                    break
    return got


def wait_for_rows(stack: Stack, table: str, within_s: float = 10.0) -> list[dict[str, object]]:
    deadline = time.monotonic() + within_s
    while not (rows := ledger_rows(stack.db, table)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return rows


def test_an_accepted_draft_streams_in_chunks_with_usage_last(stack: Stack) -> None:
    stack.replay.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    with stream(stack, stream_options={"include_usage": True}) as response:
        headers = response.headers
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == GOOD_ANSWER
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 3  # pieces, not one blob
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["stop"]
    assert len({c.id for c in chunks}) == 1
    [req] = ledger_rows(stack.db, "requests")
    assert req["status"] == "ok" and req["draft_accepted"] == 1
    # everything was known before the first byte: the headers carry the cost
    assert headers["x-cascade-request-id"] == req["id"] and headers["x-cascade-draft-accepted"] == "true"
    assert Decimal(headers["x-cascade-cost"]) * 10**9 == req["cost_nusd"]
    usage = chunks[-1].usage
    assert usage.completion_tokens == ledger_rows(stack.db, "calls")[0]["output_tokens"]
    assert Decimal(str(usage.model_extra["cost"])) * 10**9 == req["cost_nusd"]
    # the draft was asked for whole: only the final model's call streams
    assert not stack.replay.requests[0].get("stream")


def test_an_accepted_draft_goes_out_in_one_chunk_with_the_stream_s_end(stack: Stack) -> None:
    """Everything is known before the first byte, so the role chunk, the pieces, the final
    chunk and [DONE] go out as one HTTP chunk, followed by the end (a dozen sends through
    uvicorn were +0.15 ms of CPU a streamed request)."""
    stack.replay.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    host, port = stack.url.removeprefix("http://").removesuffix("/v1").split(":")
    body = json.dumps({"model": "cascade", "stream": True, "messages": [{"role": "user", "content": QUERY}]})
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {stack.key}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            f"{body}".encode()
        )
        raw = b""
        while data := sock.recv(1 << 16):
            raw += data
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0] and b"transfer-encoding: chunked" in head.lower()
    parts = []
    while (size := int(rest.partition(b"\r\n")[0], 16)) != 0:
        rest = rest.partition(b"\r\n")[2]
        parts.append(rest[:size])
        rest = rest[size + 2 :]
    assert len(parts) == 1, parts
    events = [json.loads(e[6:]) for e in parts[0].decode().split("\n\n") if e.startswith("data: {")]
    pieces = [e["choices"][0]["delta"].get("content") for e in events if e["choices"]]
    assert "".join(p or "" for p in pieces) == GOOD_ANSWER and len([p for p in pieces if p]) > 3
    assert parts[0].endswith(b"data: [DONE]\n\n")


def test_an_escalated_request_streams_the_verifier(stack: Stack) -> None:
    stack.replay.set_behavior("gpt-4o-mini", ModelBehavior(answer=REFUSAL))
    stack.replay.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER))
    with stream(stack, query=DETAILED) as response:
        assert response.headers["x-cascade-model"] == "big"
        chunks = list(response.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == LONG_ANSWER
    assert REFUSAL not in json.dumps([c.model_dump() for c in chunks])  # the withdrawn draft never shows
    draft, verifier = stack.replay.requests
    assert not draft.get("stream") and verifier["stream"] is True
    assert verifier["stream_options"] == {"include_usage": True}
    [req] = ledger_rows(stack.db, "requests")
    assert req["status"] == "ok" and req["escalated"] == 1 and req["answer"] == LONG_ANSWER
    assert chunks[-1].model_extra["cascade"]["request_id"] == req["id"]


def test_the_verifier_s_tokens_arrive_before_it_has_finished(stack: Stack) -> None:
    """The provider stalls after two chunks: the client has them anyway."""
    stack.replay.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER, stall_after=2))
    got = first_deltas(stack, 2)  # then hang up
    assert "".join(got) and LONG_ANSWER.startswith("".join(got))


def test_a_client_that_leaves_mid_stream_is_priced_recorded_and_settled(stack_factory: object) -> None:
    stack: Stack = stack_factory(extra='\n[budgets]\nmode = "block"\n')  # type: ignore[operator]
    ledger = open_ledger(stack.db)
    set_budget(ledger, "alice", BudgetConfig(daily=Decimal("5")))
    ledger.close()
    stack.replay.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER, stall_after=3))
    got = first_deltas(stack, 3)  # then hang up
    started = time.monotonic()
    [req] = wait_for_rows(stack, "requests")
    assert time.monotonic() - started < 4  # not the model's 5 s timeout: the provider stream was closed
    assert req["status"] == "interrupted"
    [call] = ledger_rows(stack.db, "calls")
    assert call["status"] == "ok" and call["finish_reason"] == "interrupted"
    assert call["answer"] == "".join(got)  # exactly what was generated, and what the client saw
    assert call["output_tokens"] > 0 and call["cost_nusd"] > 0 and req["cost_nusd"] == call["cost_nusd"]
    assert "estimated" in call["cost_source"]  # the provider's usage never came
    assert ledger_rows(stack.db, "reservations") == []
    deadline = time.monotonic() + 5
    while stack.replay.abandoned == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.replay.abandoned == 1  # the provider saw its stream closed


def test_a_provider_failure_before_any_token_is_an_http_error(stack: Stack) -> None:
    stack.replay.set_behavior("gpt-4o", ModelBehavior(status=503))
    body = {"model": "big", "stream": True, "messages": [{"role": "user", "content": QUERY}]}
    response = stack.post(body)
    assert response.status_code == 502 and response.json()["error"]["code"] == "provider_error"
    stack.replay.set_behavior("gpt-4o", ModelBehavior(status=400))  # the request as sent: the client's
    response = stack.post(body)
    assert response.status_code == 400 and response.json()["error"]["code"] == "provider_bad_request"


def test_a_refused_budget_is_429_before_the_stream_starts(stack_factory: object) -> None:
    stack: Stack = stack_factory(extra='\n[budgets]\nmode = "block"\n')  # type: ignore[operator]
    ledger = open_ledger(stack.db)
    set_budget(ledger, "alice", BudgetConfig(daily=Decimal("0.000001")))
    ledger.close()
    response = stack.post(
        {"model": "cascade", "stream": True, "messages": [{"role": "user", "content": QUERY}]}
    )
    assert response.status_code == 429 and response.json()["error"]["code"] == "budget_exceeded"
    assert "retry-after" in response.headers


def test_a_provider_that_ignores_stream_is_an_answer_and_priced(stack: Stack) -> None:
    # some OpenAI-compatible servers answer `"stream": true` with one JSON body: it was a
    # 502 "the stream ended before the answer did", recorded at $0 though it was billed
    stack.replay.set_behavior("gpt-4o", ModelBehavior(answer=GOOD_ANSWER, ignore_stream=True))
    chunks = list(stack.client().chat.completions.create(
        model="big", messages=[{"role": "user", "content": QUERY}], stream=True,
        stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == GOOD_ANSWER
    [call] = ledger_rows(stack.db, "calls")
    assert call["status"] == "ok" and call["cost_nusd"] > 0 and "estimated" not in call["cost_source"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == call["output_tokens"]


@pytest.mark.parametrize("empty", ["no choices", "no content"])
def test_a_stream_that_holds_no_answer_is_a_502_priced_and_recorded_not_an_empty_ok(
    stack: Stack, empty: str
) -> None:
    # chunks without choices (or without text and finish_reason), then [DONE], were an
    # empty "ok" answer (HTTP 200) where the same reply unstreamed is "malformed" (502)
    stack.replay.set_behavior("gpt-4o", ModelBehavior(answer=GOOD_ANSWER, empty_stream=empty))
    body = {"model": "big", "stream": True, "messages": [{"role": "user", "content": QUERY}]}
    response = stack.post(body)
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "provider_error" and "streamed an empty answer" in error["message"]
    [req] = ledger_rows(stack.db, "requests")
    assert req["status"] == "error" and req["answer"] in ("", None)
    calls = ledger_rows(stack.db, "calls")
    assert calls and calls[-1]["cost_nusd"] > 0  # the provider reported usage: the prompt is billed


def test_a_whole_reply_with_no_text_and_no_finish_reason_is_a_502_as_the_stream_is(stack: Stack) -> None:
    # unstreamed, the same empty reply was an empty "ok" answer while its stream is a 502
    stack.replay.set_behavior("gpt-4o", ModelBehavior(answer="", finish_reason=None))  # type: ignore[arg-type]
    response = stack.post({"model": "big", "messages": [{"role": "user", "content": QUERY}]})
    assert response.status_code == 502, response.text
    assert "empty chat completion" in response.json()["error"]["message"]
    [req] = ledger_rows(stack.db, "requests")
    assert req["status"] == "error"


def test_a_draft_with_no_text_and_no_finish_reason_escalates(stack: Stack) -> None:
    stack.replay.set_behavior("gpt-4o-mini", ModelBehavior(answer="", finish_reason=None))  # type: ignore[arg-type]
    stack.replay.set_behavior("gpt-4o", ModelBehavior(answer=GOOD_ANSWER))
    for stream in (False, True):
        response = stack.post({"model": "cascade", "stream": stream,
                               "messages": [{"role": "user", "content": QUERY}]})
        assert response.status_code == 200 and response.headers["x-cascade-model"] == "big", response.text
    assert [r["escalated"] for r in ledger_rows(stack.db, "requests")] == [1, 1]
