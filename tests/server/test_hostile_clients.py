"""Hostile clients of `cascade serve` (hostile-20): a body that never comes, headers that
never end, messages that say more than they should. Each gets OpenAI's error shape (or,
gone, a 499 in the access log), never a traceback, and nothing is paid for."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator

import pytest

from tests.conftest import ledger_rows
from tests.server.conftest import Stack

BODY = {"model": "cascade", "messages": [{"role": "user", "content": "What is the capital of France?"}]}


@pytest.fixture
def server_errors() -> Iterator[list[logging.LogRecord]]:
    """What uvicorn logs as errors ("Exception in ASGI application" and its traceback)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def _port(stack: Stack) -> int:
    return int(stack.url.removesuffix("/v1").rsplit(":", 1)[1])


def _wait_for_log(stack: Stack, lines: int = 1) -> None:
    deadline = time.monotonic() + 10
    while len(stack.log) < lines and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_client_that_leaves_before_its_body_is_a_499_not_a_500_with_a_traceback(
    stack: Stack, server_errors: list[logging.LogRecord]
) -> None:
    # read_body raised Starlette's ClientDisconnect past the endpoint: uvicorn logged
    # "Exception in ASGI application" with its traceback, the access log said 500
    body = json.dumps(BODY).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {stack.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body) + 500}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", _port(stack)), timeout=10) as sock:
        sock.sendall(head + body)  # 500 bytes short
        time.sleep(0.3)
    _wait_for_log(stack)
    [line] = stack.log
    assert " 499 " in line, line
    assert [r.getMessage() for r in server_errors] == []
    assert ledger_rows(stack.db, "requests") == []
