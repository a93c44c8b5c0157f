"""A client that sends its request and shuts its write side (HTTP/1.0 tools, `nc -N`) is
still reading: it gets its answer, paid for once (uvicorn alone took the FIN for a hang-up,
http.disconnect: the cascade was cancelled and the client got nothing). One that closed for
good is told from it by what its kernel does with a write (an RST): it is cancelled as a
hang-up is (tests/server/test_hangup.py). Raw sockets on a real `cascade serve`."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from cascadeflow_cli.server import ServeSettings, build_app
from cascadeflow_cli.server.protocol import PROBE
from tests.cli.support import LONG_ANSWER, REFUSAL
from tests.conftest import ledger_rows
from tests.server.conftest import Stack, make_key, write_config
from tests.server.test_hangup import send, wait_until
from tests.server.test_hostile_clients import ProtocolServer

SLOW_S = 1.0


def read_all(sock: socket.socket) -> bytes:
    got = b""
    while part := sock.recv(65536):
        got += part
    sock.close()
    return got


@pytest.fixture(params=["auto", "asyncio"])  # uvloop (serve's, when installed) and asyncio's own
def slow(request: pytest.FixtureRequest, tmp_path: Path, server: ReplayServer) -> Iterator[Stack]:
    """A Stack under `cascade serve`'s own HTTP protocol (server/protocol.py), its models slow."""
    config, db = write_config(tmp_path, server), tmp_path / "ledger.db"
    key = make_key(config, db)
    app = build_app(ServeSettings(str(config), str(db), concurrency=4), write_log=lambda line: None)
    with ProtocolServer(app, loop=request.param) as srv:
        yield _slowed(Stack(f"http://127.0.0.1:{srv.port}/v1", key, db, config, server, []))


def _slowed(stack: Stack) -> Stack:
    stack.replay.set_behavior("gpt-4o-mini", ModelBehavior(answer=REFUSAL, latency_s=SLOW_S))
    stack.replay.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER, latency_s=SLOW_S))
    return stack


@pytest.mark.parametrize("version", ["1.0", "1.1"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_half_closed_client_still_reading_gets_its_answer(slow: Stack, stream: bool, version: str) -> None:
    sock = send(slow, stream=stream, version=version)
    sock.shutdown(socket.SHUT_WR)  # request sent, nothing more to say: still reading
    answer = read_all(sock)
    probes = 0
    while answer.startswith(PROBE):  # the interim 100s a half-closed HTTP/1.1 client is sent
        answer, probes = answer[len(PROBE):], probes + 1
    assert (probes > 0) == (version == "1.1")  # HTTP/1.0 may not be sent a 1xx
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")  # uvicorn answers in 1.1 whatever was asked
    text = body.decode()
    if stream:
        deltas = [json.loads(line[6:])["choices"] for line in text.split("\n") if line.startswith("data: {")]
        assert "".join(c[0]["delta"].get("content") or "" for c in deltas if c) == LONG_ANSWER
    else:
        assert json.loads(text[text.index("{"):text.rindex("}") + 1])["choices"][0]["message"]["content"] \
            == LONG_ANSWER
    [req] = ledger_rows(slow.db, "requests")
    assert req["status"] == "ok" and req["escalated"]
    assert [c["status"] for c in ledger_rows(slow.db, "calls")] == ["ok", "ok"]
    assert slow.replay.abandoned == 0


@pytest.mark.parametrize("read_first", [False, True], ids=["unread", "read"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_client_that_shut_then_closed_is_cancelled(slow: Stack, stream: bool, read_first: bool) -> None:
    """Its FIN is a half-close's: the close is told by the RST a write draws (at once from
    a client that closed with a probe unread, at the next probe from one that read all),
    then by the write after it failing (with one probe only, neither was told)."""
    sock = send(slow, stream=stream)
    sock.shutdown(socket.SHUT_WR)
    wait_until(lambda: slow.replay.request_count("gpt-4o-mini") == 1)
    if read_first:  # every probe sent so far, then nothing unread
        got = sock.recv(65536)
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while part := sock.recv(65536):
                got += part
        assert got and got == PROBE * (len(got) // len(PROBE))
    sock.close()
    left = time.monotonic()
    wait_until(lambda: ledger_rows(slow.db, "requests"))
    assert time.monotonic() - left < SLOW_S
    [req] = ledger_rows(slow.db, "requests")
    assert req["status"] == "interrupted" and req["error"] == "the client disconnected"
    time.sleep(SLOW_S)
    assert slow.replay.request_count("gpt-4o") == 0
