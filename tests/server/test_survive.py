"""What `cascade serve` must survive, in one process (the real app on loopback, the replay
server as provider): 500 connections at once, a client that never reads its answer, and
a provider that stalls in the middle of a stream."""

from __future__ import annotations

import asyncio
import json
import socket
import time

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.cli.support import DETAILED, LONG_ANSWER
from tests.conftest import GOOD_ANSWER, ledger_rows
from tests.server.conftest import Stack


def _address(stack: Stack) -> tuple[str, int]:
    host, port = stack.url.removeprefix("http://").removesuffix("/v1").split(":")
    return host, int(port)


def _request(stack: Stack, body: dict[str, object]) -> bytes:
    raw = json.dumps(body).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {stack.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\nConnection: close\r\n\r\n")
    return head.encode() + raw


def _wait_rows(stack: Stack, table: str, n: int, timeout: float = 15) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = ledger_rows(stack.db, table)
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_500_connections_at_once_are_all_answered(stack: Stack) -> None:
    stack.replay.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    host, port = _address(stack)
    chat = _request(stack, {"model": "cascade", "messages": [{"role": "user", "content": "2 + 2?"}]})
    health = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

    async def one(index: int, opened: asyncio.Barrier) -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        await opened.wait()  # every connection is open before any request is sent
        writer.write(chat if index % 5 == 0 else health)  # 100 through the cascade, 400 cheap
        data = await reader.read()
        writer.close()
        return data

    async def main() -> list[bytes]:
        opened = asyncio.Barrier(500)
        return await asyncio.gather(*(one(i, opened) for i in range(500)))

    answers = asyncio.run(main())
    assert [a.split(b"\r\n", 1)[0] for a in answers] == [b"HTTP/1.1 200 OK"] * 500
    assert len(ledger_rows(stack.db, "requests")) == 100
    assert ledger_rows(stack.db, "reservations") == []


def test_a_client_that_never_reads_does_not_hold_up_others_and_is_recorded(stack: Stack) -> None:
    stack.replay.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER * 200))  # more than a socket buffers
    stack.replay.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    body = {"model": "big", "stream": True, "messages": [{"role": "user", "content": DETAILED}]}
    with socket.create_connection(_address(stack)) as deaf:
        deaf.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        deaf.sendall(_request(stack, body))
        quick = {"model": "cascade", "messages": [{"role": "user", "content": "2 + 2?"}]}
        for _ in range(3):  # the others go on being served meanwhile
            assert stack.post(quick).status_code == 200
    # it hung up without reading: its request is recorded and its reservation settled
    rows = _wait_rows(stack, "requests", 4)
    assert len(rows) == 4 and {r["status"] for r in rows} <= {"ok", "interrupted"}
    assert all(r["cost_nusd"] for r in rows)  # nothing generated goes unpriced
    deadline = time.monotonic() + 10
    while ledger_rows(stack.db, "reservations") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ledger_rows(stack.db, "reservations") == []


def test_a_provider_that_stalls_mid_stream_ends_the_stream_with_an_error(
    stack_factory: object, server: ReplayServer
) -> None:
    replay = server
    slow = ('[[models]]\nname = "stalls"\nmodel = "openai/gpt-4o"\napi_base = "{url}"\n'
            "timeout = 0.5\nmax_retries = 0\n")
    stack: Stack = stack_factory(extra_models=slow.format(url=replay.base_url))  # type: ignore[operator]
    stack.replay.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER, stall_after=2))
    body = {"model": "stalls", "stream": True, "messages": [{"role": "user", "content": DETAILED}]}
    started = time.monotonic()
    with socket.create_connection(_address(stack), timeout=20) as conn:
        conn.sendall(_request(stack, body))
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    assert time.monotonic() - started < 10  # the model's read timeout, not a hang
    events = [json.loads(line[6:]) for line in data.decode().splitlines() if line.startswith("data: {")]
    assert any(e.get("choices") and e["choices"][0]["delta"].get("content") for e in events)  # tokens came
    assert "error" in events[-1]  # then the stream said why it ended
    [req] = [r for r in _wait_rows(stack, "requests", 1) if r["model"] == "stalls"]
    assert req["status"] == "error" and req["cost_nusd"] > 0  # what it generated before stalling is paid for
    [call] = [c for c in ledger_rows(stack.db, "calls") if c["request_id"] == req["id"]]
    assert call["status"] == "error" and call["output_tokens"] > 0 and "estimated" in str(call["cost_source"])
    assert ledger_rows(stack.db, "reservations") == []


def test_a_provider_that_times_out_is_charged_its_estimate(
    stack_factory: object, server: ReplayServer
) -> None:
    """Served on the event loop's transport (a whole answer) and on the pool's (a stream):
    the request was sent, the provider may be writing its answer still, so the call is
    charged prompt + max_tokens and the reservation settles to that, not to $0."""
    slow = ('[[models]]\nname = "slow"\nmodel = "openai/gpt-4o"\napi_base = "{url}"\n'
            "timeout = 0.5\nmax_retries = 0\n")
    stack: Stack = stack_factory(extra_models=slow.format(url=server.base_url))  # type: ignore[operator]
    stack.replay.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER, latency_s=1.5))
    body = {"model": "slow", "max_tokens": 300, "messages": [{"role": "user", "content": DETAILED}]}
    whole = stack.post(body)
    assert whole.status_code >= 500 and "error" in whole.json(), whole.text
    with socket.create_connection(_address(stack), timeout=20) as conn:
        conn.sendall(_request(stack, {**body, "stream": True}))
        while conn.recv(65536):
            pass
    reqs = _wait_rows(stack, "requests", 2)
    calls = ledger_rows(stack.db, "calls")
    assert len(reqs) == 2 and {r["status"] for r in reqs} == {"error"}
    assert [c["output_tokens"] for c in calls] == [300, 300]
    assert {c["cost_source"] for c in calls} == {"litellm+estimated-unanswered"}
    assert all(int(str(c["cost_nusd"])) > 0 for c in calls)
    assert sorted(r["cost_nusd"] for r in reqs) == sorted(c["cost_nusd"] for c in calls)
    assert ledger_rows(stack.db, "reservations") == []
