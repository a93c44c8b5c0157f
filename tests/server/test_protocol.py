"""server/protocol.py: a response's head goes out in the same write as its body, and is
never held back when nothing follows it (an interim 100 Continue, a head alone)."""

from __future__ import annotations

import asyncio
import json
import socket

from cascadeflow_cli.server.protocol import _HeadFirst, is_response_head
from tests.server.conftest import Stack

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n"


class Recording(asyncio.Transport):
    """A transport that keeps what is written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def test_the_head_and_the_body_go_out_in_one_write() -> None:
    async def main() -> list[bytes]:
        sent = Recording()
        transport = _HeadFirst(sent, asyncio.get_running_loop())
        transport.write(HEAD)
        transport.write(b"{}")
        await asyncio.sleep(0)  # the fallback callback finds nothing left to send
        return sent.writes

    assert asyncio.run(main()) == [HEAD + b"{}"]


def test_a_head_with_nothing_after_it_goes_out_on_the_next_step_of_the_loop() -> None:
    async def main() -> tuple[list[bytes], list[bytes]]:
        sent = Recording()
        transport = _HeadFirst(sent, asyncio.get_running_loop())
        transport.write(HEAD)
        before = list(sent.writes)
        await asyncio.sleep(0)
        return before, sent.writes

    before, after = asyncio.run(main())
    assert before == [] and after == [HEAD]


def test_interim_answers_and_whole_responses_are_not_held() -> None:
    async def main() -> list[bytes]:
        sent = Recording()
        transport = _HeadFirst(sent, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        transport.write(HEAD + b"{}")
        return list(sent.writes)  # before the loop runs anything else

    assert asyncio.run(main()) == [b"HTTP/1.1 100 Continue\r\n\r\n", HEAD + b"{}"]
    assert is_response_head(HEAD) and not is_response_head(HEAD + b"{}")


def test_closing_sends_a_held_head_first() -> None:
    async def main() -> tuple[list[bytes], bool]:
        sent = Recording()
        transport = _HeadFirst(sent, asyncio.get_running_loop())
        transport.write(HEAD)
        transport.close()
        return sent.writes, sent.closed

    assert asyncio.run(main()) == ([HEAD], True)


def test_a_client_that_waits_for_100_continue_gets_it_then_its_answer(stack: Stack) -> None:
    messages = [{"role": "user", "content": "What is 2+2?"}]
    body = json.dumps({"model": "cascade", "messages": messages}).encode()
    host, port = stack.url.removeprefix("http://").removesuffix("/v1").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {stack.key}\r\nContent-Length: {len(body)}\r\n".encode()
            + b"Expect: 100-continue\r\n\r\n"
        )
        interim = sock.recv(1024)  # the server must not hold this back: the client waits for it
        assert interim.startswith(b"HTTP/1.1 100")
        sock.sendall(body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            part = sock.recv(65536)
            assert part, answer
            answer += part
    assert answer.startswith(b"HTTP/1.1 200")
    assert b'"content"' in answer.partition(b"\r\n\r\n")[2]
