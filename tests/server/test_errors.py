"""Bad requests over raw HTTP: each gets a clear 4xx in OpenAI's error shape, nothing is
sent to a provider, nothing is recorded, and the server keeps serving."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.cli.support import QUERY
from tests.conftest import ledger_rows
from tests.server.conftest import Stack

USER = {"role": "user", "content": QUERY}


def assert_error(response: httpx.Response, status: int, *words: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert all(w in error["message"] for w in words), error
    return error


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"model": "cascade"}, 400, ["messages"]),
        ({"model": "cascade", "messages": []}, 400, ["messages"]),
        ({"messages": [USER]}, 400, ["model"]),
        ({"model": "gpt-9", "messages": [USER]}, 404, ["gpt-9"]),
        ({"model": "cascade", "messages": [USER], "n": 2}, 400, ["n = 1"]),
        ({"model": "cascade", "messages": [USER], "max_tokens": 0}, 400, ["max_tokens"]),
        # a limit no ledger column holds was sent and paid, then not recordable (hostile-13)
        ({"model": "cascade", "messages": [USER], "max_tokens": 10**23}, 400, ["max_tokens"]),
        ({"model": "cascade", "messages": [USER], "max_completion_tokens": 10**13}, 400,
         ["max_completion_tokens"]),
        (
            {
                "model": "cascade",
                "messages": [USER],
                "tools": [{"type": "function", "function": {"name": "f"}}],
            },
            400,
            ["tool"],
        ),
        (
            {"model": "cascade", "messages": [USER, {"role": "tool", "content": "42", "tool_call_id": "x"}]},
            400,
            ["tool"],
        ),
        (
            {
                "model": "cascade",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "What is this?"},
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                        ],
                    }
                ],
            },
            400,
            ["image_url"],
        ),
        ({"model": "cascade", "messages": [{"role": "wizard", "content": "hi"}]}, 400, ["role"]),
        (
            {"model": "cascade", "messages": [{"role": "system", "content": "only a system message"}]},
            400,
            ["user message"],
        ),
        (["not", "an", "object"], 400, ["object"]),
    ],
)
def test_bad_bodies_get_a_clear_error(stack: Stack, body: object, status: int, words: list[str]) -> None:
    assert_error(stack.post(body), status, *words)
    assert stack.replay.requests == [] and ledger_rows(stack.db, "requests") == []


def test_malformed_json_is_400(stack: Stack) -> None:
    response = httpx.post(
        f"{stack.url}/chat/completions",
        content=b'{"model": "cascade", "messages": [',
        headers={"Authorization": f"Bearer {stack.key}", "Content-Type": "application/json"},
    )
    assert_error(response, 400, "JSON")


def test_unknown_fields_are_ignored(stack: Stack) -> None:
    response = stack.post(
        {
            "model": "cascade",
            "messages": [USER],
            "temperature": 0.2,
            "seed": 7,
            "user": "someone-else",
            "metadata": {"x": 1},
            "frobnicate": True,
        }
    )
    assert response.status_code == 200
    [req] = ledger_rows(stack.db, "requests")
    assert req["user"] == "alice"  # the key says who pays, not the body


def test_a_10_mb_body_is_413(stack: Stack) -> None:
    body = b'{"model": "cascade", "messages": [{"role": "user", "content": "' + b"x" * (10 << 20) + b'"}]}'
    response = httpx.post(
        f"{stack.url}/chat/completions",
        content=body,
        timeout=30,
        headers={"Authorization": f"Bearer {stack.key}", "Content-Type": "application/json"},
    )
    assert_error(response, 413, "larger")
    assert stack.post({"model": "cascade", "messages": [USER]}).status_code == 200  # still serving


def test_a_10_mb_body_without_content_length_is_413(stack: Stack) -> None:
    def chunks():
        yield b'{"model": "cascade", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"x" * (1 << 20)
        yield b'"}]}'

    response = httpx.post(
        f"{stack.url}/chat/completions",
        content=chunks(),
        timeout=30,
        headers={"Authorization": f"Bearer {stack.key}", "Content-Type": "application/json"},
    )
    assert_error(response, 413, "larger")


def test_a_client_that_never_finishes_its_body_does_not_block_others(stack: Stack) -> None:
    host, port = stack.url.removeprefix("http://").removesuffix("/v1").split(":")
    with socket.create_connection((host, int(port))) as slow:
        slow.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"model": '
        )
        assert stack.post({"model": "cascade", "messages": [USER]}).status_code == 200


def test_a_wrong_scheme_is_401(stack: Stack) -> None:
    response = httpx.post(
        f"{stack.url}/chat/completions",
        json={"model": "cascade", "messages": [USER]},
        headers={"Authorization": f"Basic {stack.key}"},
    )
    assert_error(response, 401)


@pytest.mark.parametrize("stream", [False, True])
def test_a_body_naming_a_key_twice_is_400_naming_it(stack: Stack, stream: bool) -> None:
    # Python's json keeps the last "model", other readers the first: a proxy that checked
    # one model and our server that ran another; the key named twice is refused
    body = ('{"model": "mini", "stream": %s, "messages": [{"role": "user", "content": "hi"}], '
            '"model": "big"}' % ("true" if stream else "false"))
    headers = {"Authorization": f"Bearer {stack.key}", "Content-Type": "application/json"}
    response = httpx.post(f"{stack.url}/chat/completions", content=body, timeout=20, headers=headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "'model' appears twice" in error["message"] and error["type"] == "invalid_request_error"
    nested = '{"model": "mini", "messages": [{"role": "user", "content": "a", "content": "b"}]}'
    response = httpx.post(f"{stack.url}/chat/completions", content=nested, timeout=20, headers=headers)
    assert response.status_code == 400 and "'content' appears twice" in response.json()["error"]["message"]
    assert ledger_rows(stack.db, "requests") == []


def test_both_framings_are_refused_by_the_app_too_under_h11(stack: Stack) -> None:
    """h11 (uvicorn's parser without httptools) lets Content-Length with Transfer-Encoding
    through, the chunked framing winning: the app refuses it in OpenAI's shape itself."""
    import json

    from cascadeflow_cli.server import ServeSettings, build_app
    from tests.server.conftest import ThreadServer

    srv = ThreadServer(build_app(ServeSettings(str(stack.config), str(stack.db), concurrency=8)))
    srv.server.config.http = "h11"
    with srv, socket.create_connection(("127.0.0.1", srv.port), timeout=20) as sock:
        body = json.dumps({"model": "cascade", "messages": [{"role": "user", "content": QUERY}]}).encode()
        head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                f"Authorization: Bearer {stack.key}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nTransfer-Encoding: chunked\r\n\r\n{len(body):x}\r\n")
        sock.sendall(head.encode() + body + b"\r\n0\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.split(b" ", 2)[1] == b"400", data
    error = json.loads(data.split(b"\r\n\r\n", 1)[1])["error"]
    assert "both Content-Length and Transfer-Encoding" in error["message"]
    assert ledger_rows(stack.db, "requests") == []
