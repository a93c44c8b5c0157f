"""The cascade in the request's own task (server/bridge.py): blocking code that awaits
through its greenlet, the group-commit writer resolving tasks' futures without
overspending, and the event-loop transport of the fast client against a real loopback
HTTP server (keep-alive reuse, a connection the server dropped while idle, chunks, a
stall)."""

from __future__ import annotations

import asyncio
import contextvars
from decimal import Decimal
from pathlib import Path

import greenlet
import pytest

from cascadeflow_cli.config import load_config
from cascadeflow_cli.engine.providers.aio_transport import AsyncKeepAliveClient
from cascadeflow_cli.engine.providers.transport import TransportError, TransportTimeout
from cascadeflow_cli.ledger.budgets import BudgetConfig, set_budget
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.ledger.enforcement import BudgetGate
from cascadeflow_cli.ledger.group_commit import GroupCommitLedger
from cascadeflow_cli.server import bridge


def test_blocking_code_awaits_through_its_greenlet() -> None:
    async def twice(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("from the loop")

    def work(x: int) -> tuple[int, str, bool]:
        doubled = bridge.await_only(twice(x))
        try:
            bridge.await_only(fails())
        except ValueError as exc:  # the awaitable's error is raised where it was awaited
            caught = str(exc)
        return doubled, caught, bridge.active()

    async def main() -> None:
        assert await bridge.run(work, 21) == (42, "from the loop", True)
        with pytest.raises(ZeroDivisionError):
            await bridge.run(lambda: 1 / 0)
        assert not bridge.active()  # the task itself is not bridged

    asyncio.run(main())
    outside = twice(1)
    with pytest.raises(RuntimeError):
        bridge.await_only(outside)  # outside a bridged greenlet
    outside.close()


def test_calls_reuse_a_greenlet_without_sharing_their_context() -> None:
    """One call after another runs in the same greenlet (a new one a request cost 6 µs and
    an mmap/munmap pair), yet each call has a context of its own, a failed call leaves
    the next one clean, and calls at once each have their own greenlet."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    used: list[object] = []

    def work(value: str) -> tuple[str, str]:
        used.append(greenlet.getcurrent())
        seen = var.get()
        var.set(value)
        bridge.await_only(asyncio.sleep(0))
        return seen, var.get()

    async def main() -> None:
        assert await bridge.run(work, "a") == ("unset", "a")
        with pytest.raises(ZeroDivisionError):
            await bridge.run(lambda: 1 / 0)
        assert await bridge.run(work, "b") == ("unset", "b")  # "a" stayed in its own call
        assert await asyncio.gather(bridge.run(work, "c"), bridge.run(work, "d")) == [
            ("unset", "c"), ("unset", "d")]
        assert var.get() == "unset"

    asyncio.run(main())
    assert used[0] is used[1]  # reused
    assert used[2] is not used[3]  # two at once: two greenlets


def test_a_cancelled_task_cancels_the_awaiting_code() -> None:
    seen: list[str] = []

    def work() -> None:
        try:
            bridge.await_only(asyncio.sleep(30))
        except asyncio.CancelledError:
            seen.append("cancelled inside")
            raise

    async def main() -> None:
        task = asyncio.create_task(bridge.run(work))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert seen == ["cancelled inside"]


def test_tasks_reserving_through_the_writer_never_overspend(tmp_path: Path) -> None:
    config_path = tmp_path / "cascadeflow.toml"
    config_path.write_text('[budgets]\nmode = "block"\n', encoding="utf-8")
    store = GroupCommitLedger(open_ledger(tmp_path / "ledger.db"), bridge.LoopAwaiter())
    set_budget(store, "alice", BudgetConfig(total=Decimal("0.000010")))  # ten reservations of $0.000001
    gate = BudgetGate(store, load_config(config_path))

    def reserve(n: int) -> list[str]:
        return [
            gate.reserve(
                "alice", f"r{n}-{i}", ["mini"], estimate=lambda _: 1000, degraded=lambda _: None, ttl_s=60
            ).action
            for i in range(5)
        ]

    async def main() -> list[str]:
        done = await asyncio.gather(*(bridge.run(reserve, n) for n in range(8)))
        return [action for actions in done for action in actions]

    actions = asyncio.run(main())
    assert actions.count("block") == 30 and len(actions) == 40  # exactly ten allowed of forty
    assert store.reserved_spend("alice") == 10_000
    store.close()


class _Server:
    """A loopback HTTP/1.1 server answering POSTs by path: ``/ok`` (kept alive), ``/close``
    (Connection: close, body to EOF), ``/chunked``, ``/drop`` (answers, then drops the
    connection as an idle timeout would), ``/stall`` (never answers)."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while line := await reader.readline():
                path = line.split()[1].decode()
                length = 0
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                self.requests += 1
                if path == "/stall":
                    await asyncio.sleep(30)
                elif path == "/close":
                    writer.write(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"to": "eof"}')
                    await writer.drain()
                    return
                elif path == "/chunked":
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b'4\r\n{"a"\r\n4\r\n: 1}\r\n0\r\n\r\n'
                    )
                else:
                    body = b'{"n": %d}' % self.requests
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nRetry-After: 3\r\nContent-Length: %d\r\n\r\n%s"
                        % (len(body), body)
                    )
                    if path == "/drop":
                        await writer.drain()
                        return
        finally:
            writer.close()


def test_the_event_loop_transport_reuses_and_recovers_connections() -> None:
    async def main() -> None:
        handler = _Server()
        server = await asyncio.start_server(handler.handle, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        client = AsyncKeepAliveClient()
        try:
            first = await client.post(f"{base}/ok", {"q": 1}, {"Authorization": "Bearer x"}, 5)
            second = await client.post(f"{base}/ok", {"q": 2}, {}, 5)
            assert (first.json(), second.json()) == ({"n": 1}, {"n": 2})
            assert first.headers.get("retry-after") == "3" and first.status_code == 200
            assert handler.connections == 1  # kept alive
            assert (await client.post(f"{base}/chunked", {}, {}, 5)).json() == {"a": 1}
            assert (await client.post(f"{base}/close", {}, {}, 5)).json() == {"to": "eof"}
            await client.post(f"{base}/drop", {}, {}, 5)
            await asyncio.sleep(0.05)  # the server has closed the idle connection by now
            assert (await client.post(f"{base}/ok", {}, {}, 5)).status_code == 200
            assert handler.connections == 3  # a new one after /close and after /drop only
            with pytest.raises(TransportTimeout):
                await client.post(f"{base}/stall", {}, {}, 0.2)
            assert (await client.post(f"{base}/ok", {}, {}, 5)).status_code == 200  # not the spoilt one
        finally:
            client.close()
            server.close()
        with pytest.raises(TransportError):
            await client.post(f"{base}/ok", {}, {}, 5)  # nobody listens there any more

    asyncio.run(main())
