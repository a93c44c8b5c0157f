"""Hostile HTTP to `cascade serve` (raw httpx and sockets): every answer is OpenAI's error
shape with the right status, never a plain-text page, and nothing is paid for."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest

from tests.conftest import ledger_rows
from tests.server.conftest import Stack
from tests.server.test_errors import assert_error

BODY = {"model": "cascade", "messages": [{"role": "user", "content": "What is the capital of France?"}]}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/v1/nothing", 404), ("POST", "/v1/completions", 404), ("GET", "/v1/chat/completions", 405),
     ("DELETE", "/v1/models", 405)],
)
def test_an_unknown_path_or_method_is_an_openai_error(
    stack: Stack, method: str, path: str, status: int
) -> None:
    # Starlette's own pages were text/plain "Not Found": the SDK's error then had no message
    response = httpx.request(method, stack.url.removesuffix("/v1") + path, timeout=20)
    error = assert_error(response, status)
    assert response.headers["content-type"].startswith("application/json") and error["message"]


def test_a_compressed_body_is_refused_by_name(stack: Stack) -> None:
    # a gzip body was "not valid JSON": the client could not tell what was wrong
    headers = {"Authorization": f"Bearer {stack.key}", "Content-Encoding": "gzip",
               "Content-Type": "application/json"}
    response = httpx.post(f"{stack.url}/chat/completions", content=gzip.compress(json.dumps(BODY).encode()),
                          headers=headers, timeout=20)
    assert_error(response, 415, "gzip")
    assert ledger_rows(stack.db, "requests") == []


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"stream": True, "stream_options": {"include_usage": "no"}}, "stream_options.include_usage"),
     ({"stream": True, "stream_options": []}, "stream_options"),
     ({"n": True}, "n"), ({"n": 1.5}, "n")],
)
def test_fields_of_the_wrong_type_are_400s(stack: Stack, extra: dict[str, object], param: str) -> None:
    # include_usage "no" turned usage on (truthy), n = true passed as 1
    error = assert_error(stack.post({**BODY, **extra}), 400)
    assert error["param"] == param
    assert ledger_rows(stack.db, "requests") == []


def test_a_key_pasted_into_a_field_is_never_echoed_in_an_error(stack: Stack) -> None:
    # docs/errors.md: every error message is redacted; the request errors echoed the value
    key = stack.key
    user = {"role": "user", "content": "hi"}
    for body in ({"model": key, "messages": [user]}, {"model": f"cascade/{key}", "messages": [user]},
                 {"model": "cascade", "messages": [{"role": key, "content": "hi"}]},
                 {"model": "cascade", "messages": [{"role": "user", "content": [{"type": key}]}]}):
        response = stack.post(body)
        assert 400 <= response.status_code < 500 and "[redacted]" in response.json()["error"]["message"]
        assert key not in response.text and key[:20] not in response.text


@pytest.mark.parametrize("stream", [False, True])
def test_two_authorization_headers_are_refused_not_picked_from(stack: Stack, stream: bool) -> None:
    # the first one won: behind a proxy that adds its own, which caller pays depended on order
    import socket

    body = json.dumps({**BODY, "stream": stream}).encode()
    port = int(stack.url.rsplit(":", 1)[1].split("/")[0])
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"Authorization: Bearer {stack.key}\r\nAuthorization: Bearer sk-cf-someoneelse\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head.encode() + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    payload = json.loads(data.split(b"\r\n\r\n", 1)[1])
    assert status == 400 and "one Authorization header" in payload["error"]["message"], data
    assert stack.key not in data.decode() and ledger_rows(stack.db, "requests") == []


def test_a_user_name_holding_a_line_break_cannot_forge_an_access_log_line(stack: Stack) -> None:
    # `key create` refuses such a name now, but a ledger written by an older version may
    # hold one; its requests wrote the name raw into the access log: a second, forged line
    import sqlite3

    from tests.server.conftest import make_key

    key = make_key(stack.config, stack.db, "eve")
    forged = "eve\n2026-01-01T00:00:00Z POST /v1/chat/completions 200"
    with sqlite3.connect(stack.db) as conn:  # as an older version stored it
        conn.execute("update api_keys set user = ? where user = 'eve'", (forged,))
    assert stack.post(BODY, key=key).status_code in (200, 400)  # served or refused, never a 500
    [line] = stack.log
    assert "\n" not in line  # one line: nothing forged after it


@pytest.mark.parametrize("stream", [False, True])
def test_a_provider_s_retry_after_reaches_the_client(stack: Stack, stream: bool) -> None:
    # a provider's 429 with Retry-After came out as a bare 502: the openai SDK then
    # retried it at once, at a provider that had asked for a pause
    from cascadeflow_cli.replay.server import ModelBehavior

    stack.replay.set_behavior("gpt-4o", ModelBehavior(status=429, retry_after=0.2))
    response = stack.post({"model": "big", "stream": stream, "messages": BODY["messages"]})
    assert_error(response, 502)
    assert response.headers["retry-after"] == "1"
    stack.replay.set_behavior("gpt-4o", ModelBehavior(status=400))  # no Retry-After: none sent
    assert "retry-after" not in stack.post({"model": "big", "messages": BODY["messages"]}).headers


@pytest.mark.parametrize("stream", [False, True])
def test_a_refused_or_failed_request_names_its_caller_in_the_access_log(
    stack_factory: object, stream: bool
) -> None:
    # a 429 budget refusal and a 502 logged only "model=cascade": which user was refused,
    # and which ledger row a failure was, could not be told from the log
    from decimal import Decimal

    from cascadeflow_cli.ledger.budgets import BudgetConfig, set_budget
    from cascadeflow_cli.ledger.db import open_ledger
    from cascadeflow_cli.replay.server import ModelBehavior
    from tests.server.conftest import make_key

    stack: Stack = stack_factory(extra='\n[budgets]\nmode = "block"\n')  # type: ignore[operator]
    broke = make_key(stack.config, stack.db, "broke")
    ledger = open_ledger(stack.db)
    set_budget(ledger, "broke", BudgetConfig(daily=Decimal("0")))
    ledger.close()
    stack.replay.set_behavior("gpt-4o", ModelBehavior(status=503))
    assert_error(stack.post({**BODY, "stream": stream}, key=broke), 429)
    assert_error(stack.post({"model": "big", "stream": stream, "messages": BODY["messages"]}), 502)
    refused, failed = stack.log
    assert "user=broke" in refused and f"key={broke[:14]}" in refused, refused
    assert "user=alice" in failed and "key=sk-cf-" in failed and stack.key not in failed, failed
    ids = {row["id"] for row in ledger_rows(stack.db, "requests") if row["status"] == "error"}
    assert ids and f"request_id={ids.pop()}" in failed


@pytest.mark.parametrize("index", [0, 1])
def test_a_lone_surrogate_in_a_message_is_a_400_that_names_the_json_not_a_terminal(
    stack: Stack, index: int
) -> None:
    # the engine's message said "check the terminal's or the file's encoding" to an HTTP client,
    # and a surrogate in an earlier message (not the query) was not checked before paying
    messages = [{"role": "user", "content": "hi"},
                {"role": "user", "content": "What is the capital of France?"}]
    messages[index]["content"] = "caf\ud800 ok" if index == 0 else "What is \udce9?"
    body = json.dumps({"model": "cascade", "messages": messages}).encode()  # ensure_ascii: "\ud800"
    headers = {"Authorization": f"Bearer {stack.key}", "Content-Type": "application/json"}
    response = httpx.post(f"{stack.url}/chat/completions", content=body, headers=headers, timeout=20)
    error = assert_error(response, 400, "surrogate pair")
    assert error["param"] == f"messages[{index}].content" and "terminal" not in error["message"]
    assert ("\\ud800 at character 4" if index == 0 else "\\udce9 at character 9") in error["message"]
    assert ledger_rows(stack.db, "requests") == []


@pytest.mark.parametrize("stream", [False, True])
def test_a_max_tokens_above_the_models_output_limit_is_capped_there_not_refused(
    stack: Stack, stream: bool
) -> None:
    # it reached the provider as given: OpenAI answers 400, which was a 502 the SDK retried
    # twice; LiteLLM's map knows the limit (16384 for both) and the budget estimate used it
    from cascadeflow_cli.replay.behavior import ModelBehavior
    from cascadeflow_cli.replay.wire import token_limit

    for model in ("gpt-4o-mini", "gpt-4o"):
        stack.replay.set_behavior(model, ModelBehavior(max_tokens_limit=16384))
    client = stack.client()
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="cascade", messages=messages, max_tokens=1_000_000, stream=True) if c.choices)
    else:
        text = client.chat.completions.create(model="cascade", messages=messages,
                                              max_tokens=1_000_000).choices[0].message.content
    assert text
    sent = [token_limit(body) for body in stack.replay.requests]
    assert sent and all(limit is not None and limit <= 16384 for limit in sent), sent
    [row] = ledger_rows(stack.db, "requests")
    assert row["status"] == "ok"


CUSTOM = """
[[models]]
name = "custom"
model = "openai/custom-llm-1"
api_base = "{base}"
input_cost_per_million = 1
output_cost_per_million = 2
retry_delay = 0.01
"""


@pytest.mark.parametrize("stream", [False, True])
def test_a_provider_s_400_for_a_max_tokens_past_a_limit_we_do_not_know_is_a_400(
    stack_factory: object, server: object, stream: bool
) -> None:
    # no price map knows this model's output limit, so max_tokens goes as asked: the
    # provider's 400 was a 502 that the openai SDK retried twice, to the same refusal
    import openai

    from cascadeflow_cli.replay.behavior import ModelBehavior

    stack: Stack = stack_factory(extra_models=CUSTOM.format(base=server.base_url))  # type: ignore[operator, attr-defined]
    stack.replay.set_behavior("custom-llm-1", ModelBehavior(max_tokens_limit=4096))
    client = openai.OpenAI(base_url=stack.url, api_key=stack.key, timeout=20)  # the SDK's own retries
    with pytest.raises(openai.BadRequestError) as refused:
        list(client.chat.completions.create(model="custom", messages=BODY["messages"], max_tokens=100_000,
                                            stream=stream))
    assert refused.value.code == "provider_bad_request" and "max_tokens is too large" in refused.value.message
    assert len(stack.replay.requests) == 1  # neither we nor the SDK sent it again
    [row] = ledger_rows(stack.db, "requests")
    assert row["status"] == "error"


def test_a_latin1_body_is_refused_as_not_utf8(stack: Stack) -> None:
    # it said "not valid JSON": the JSON was fine, its encoding was not
    body = json.dumps({**BODY, "messages": [{"role": "user", "content": "Qu'est-ce qu'un caf\u00e9 ?"}]},
                      ensure_ascii=False).encode("latin-1")
    headers = {"Authorization": f"Bearer {stack.key}", "Content-Type": "application/json"}
    response = httpx.post(f"{stack.url}/chat/completions", content=body, headers=headers, timeout=20)
    error = assert_error(response, 400, "the request body is not UTF-8 (byte 0xe9 at offset")
    assert error["message"].endswith("send JSON encoded as UTF-8")
    assert ledger_rows(stack.db, "requests") == []


@pytest.mark.parametrize(("content", "said"), [
    ([{"type": None}], "messages[0].content[0].type must be a string such as \"text\", got null"),
    ([{"type": 3}], "messages[0].content[0].type must be a string such as \"text\", got a number"),
    ([{"type": "text", "text": "hi"}, "hi"],
     "messages[0].content[1] must be an object with a 'type', got a string"),
    ([{"type": "text", "text": None}], "messages[0].content[0].text must be a string, got null"),
    ([{"type": "text"}], "messages[0].content[0].text must be a string, got null"),
])
def test_a_malformed_content_part_says_what_is_wrong(stack: Stack, content: object, said: str) -> None:
    # [{"type": null}] said "unknown content part None" (Python's None, not JSON's null)
    error = assert_error(stack.post({**BODY, "messages": [{"role": "user", "content": content}]}), 400)
    assert error["message"] == said and error["param"] == "messages[0].content"
    assert ledger_rows(stack.db, "requests") == []
