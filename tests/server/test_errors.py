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
