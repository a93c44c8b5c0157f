"""The OpenAI-compatible client's transport on an event loop (`cascade serve`): one POST
with a JSON body over pooled keep-alive connections, asyncio streams, a timeout for the
whole exchange. The same requests and the same errors as ``transport.KeepAliveClient``
(TransportTimeout, TransportError, a Response), without a thread per call: the server
awaits it from the request's own task (server/bridge.py).

Why not httpx.AsyncClient (installed, with litellm): serve is CPU-bound, and httpx cost
2.3–3.5 ms of CPU per request where this costs 0.29–0.32 ms, with the replay server in
the same process (`python bench/aio_transport.py`, quiet machine); a served request is
about 1.7 ms in all.

Only whole answers: a streamed call still runs on a pool thread over the blocking
transport (its reader may cancel it from any thread, a seam the event loop does not need).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import ssl
from typing import Any
from urllib.parse import urlsplit

from cascadeflow_cli.engine.providers.cancel import Cancellation
from cascadeflow_cli.engine.providers.transport import (
    MAX_RESPONSE_BYTES,
    Response,
    TransportBroken,
    TransportError,
    TransportTimeout,
    TransportTooLarge,
)

_MAX_IDLE = 256  # idle connections kept per host; beyond that a returned one is closed
_MAX_HEADER_LINES = 200


class _Conn:
    __slots__ = ("reader", "sent", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.sent = False  # this exchange's request was written: a failure now may be billed

    def usable(self) -> bool:
        """Idle and still open: a peer that closed it has left EOF in the reader."""
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class _Stale(Exception):
    """A reused connection closed before a byte of the answer came: the peer dropped it
    while it was idle (its keep-alive timeout), so the request never reached it."""


class AsyncKeepAliveClient:
    """``await post(url, payload, headers, timeout)``; connections are per host, reused."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, str], list[_Conn]] = {}
        self._tls: ssl.SSLContext | None = None
        # url -> its parts: urlsplit and its properties were 3.9 µs a call, for the few
        # URLs a config names
        self._targets: dict[str, tuple[tuple[str, str], str, str, int | None]] = {}

    async def post(
        self, url: str, payload: Any, headers: dict[str, str], timeout: float,
        cancel: Cancellation | None = None,
    ) -> Response:
        """The whole answer. ``cancel``: its ``cancel()`` (from any thread) aborts the
        connection meanwhile, which ends this call with a TransportError (not retried)."""
        target = self._targets.get(url)
        if target is None:
            target = self._target(url)
        key, path, hostname, port = target
        body = json.dumps(payload).encode()
        head = [f"POST {path} HTTP/1.1", f"Host: {key[1]}", "Content-Type: application/json"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        head.append(f"Content-Length: {len(body)}")
        message = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        conn: _Conn | None = None
        try:
            async with asyncio.timeout(timeout):
                conn = self._take(key)
                if conn is not None:
                    try:
                        return await self._exchange(key, conn, message, cancel)
                    except _Stale:
                        conn = None  # retried once on a new connection, as http clients do
                        if cancel is not None and cancel.cancelled:  # our own abort: no retry
                            raise TransportError("aborted: the caller left", sent=True) from None
                conn = await self._open(key[0], hostname, port)
                try:
                    return await self._exchange(key, conn, message, cancel)
                except _Stale:
                    raise TransportError("the server closed the connection without answering",
                                         sent=True) from None
        except TimeoutError:
            raise TransportTimeout("timed out", sent=conn is not None and conn.sent) from None
        finally:
            if cancel is not None:
                cancel.opened(None)

    def _target(self, url: str) -> tuple[tuple[str, str], str, str, int | None]:
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        target = ((parts.scheme, parts.netloc), path, parts.hostname or "", parts.port)
        if len(self._targets) < 64:  # URLs come from the config: a bound, not a policy
            self._targets[url] = target
        return target

    def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    def _take(self, key: tuple[str, str]) -> _Conn | None:
        conns = self._idle.get(key)
        while conns:
            conn = conns.pop()
            if conn.usable():
                return conn
            conn.close()
        return None

    async def _open(self, scheme: str, host: str, port: int | None) -> _Conn:
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            tls = self._tls = self._tls or ssl.create_default_context()
        try:
            reader, writer = await asyncio.open_connection(
                host, port or (443 if tls else 80), ssl=tls, limit=1 << 20
            )
        except OSError as exc:
            raise TransportError(str(exc) or type(exc).__name__) from None
        return _Conn(reader, writer)

    async def _exchange(
        self, key: tuple[str, str], conn: _Conn, message: bytes, cancel: Cancellation | None = None
    ) -> Response:
        """Send ``message``, read the whole answer; the connection goes back to the pool
        when the answer allows it, else it is closed (also on any failure)."""
        reused = True
        head: bytes | None = None
        try:
            conn.sent = False
            conn.writer.write(message)
            conn.sent = True
            if cancel is not None:  # its cancel may come from another thread: on the loop
                cancel.opened(functools.partial(_abort, asyncio.get_running_loop(), conn.writer))
            try:
                head = await conn.reader.readuntil(b"\r\n\r\n")  # the status line and headers at once
            except asyncio.IncompleteReadError as exc:
                if not exc.partial:
                    raise _Stale from None
                raise
            reused = False
            status, headers, keep = _head(head)
            body, keep = await _body(conn.reader, status, headers, keep)
        except _Stale:
            conn.close()
            raise
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            conn.close()
            if reused and isinstance(exc, ConnectionError | asyncio.IncompleteReadError):
                raise _Stale from None
            if head is not None and isinstance(exc, ConnectionError | asyncio.IncompleteReadError):
                # the server answered, then the connection broke mid-body: not "cannot reach"
                raise TransportBroken(exc, None) from None
            raise TransportError(str(exc) or type(exc).__name__, sent=True) from None
        except BaseException:  # a timeout or a cancellation mid-answer: the connection is spoilt
            conn.close()
            raise
        idle = self._idle.setdefault(key, [])
        if keep and len(idle) < _MAX_IDLE:
            idle.append(conn)
        else:
            conn.close()
        return Response(status, headers, body)


def _abort(loop: asyncio.AbstractEventLoop, writer: asyncio.StreamWriter) -> None:
    """Abort ``writer``'s connection: the read waiting on it ends (EOF). On its loop's
    thread at once (the exchange is mid-await: no other request can have the connection
    yet), from another thread on the loop."""
    try:
        here = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    if here is loop:
        writer.transport.abort()
        return
    with contextlib.suppress(RuntimeError):  # the loop is closed: so is the connection
        loop.call_soon_threadsafe(writer.transport.abort)


def _head(head: bytes) -> tuple[int, dict[str, str], bool]:
    """The status, the headers (lower-case names) and whether the connection stays open."""
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/"):
        raise ValueError(f"not an HTTP response: {lines[0][:40]!r}")
    status = int(rest.split(" ", 1)[0])
    if len(lines) > _MAX_HEADER_LINES:
        raise ValueError("too many header lines")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    connection = headers.get("connection", "").lower()
    keep = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
    return status, headers, keep


async def _body(
    reader: asyncio.StreamReader, status: int, headers: dict[str, str], keep: bool
) -> tuple[bytes, bool]:
    """The body, and whether the connection may be reused after it."""
    if status in (204, 304) or status < 200:
        return b"", keep
    if "chunked" in headers.get("transfer-encoding", "").lower():
        data = bytearray()
        while True:
            size = int((await reader.readline()).split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(data), keep
            if len(data) + size > MAX_RESPONSE_BYTES:
                raise TransportTooLarge(len(data) + size)
            data += await reader.readexactly(size)
            await reader.readexactly(2)
    length = headers.get("content-length")
    if length is not None:
        if int(length) > MAX_RESPONSE_BYTES:
            raise TransportTooLarge(int(length))
        return await reader.readexactly(int(length)), keep
    # no length nor chunks: it ends with the connection. read(n) returns what has come so
    # far (one segment), not the body: read on to EOF, within the cap
    data = bytearray()
    while piece := await reader.read(MAX_RESPONSE_BYTES + 1 - len(data)):
        data += piece
        if len(data) > MAX_RESPONSE_BYTES:
            raise TransportTooLarge(len(data))
    return bytes(data), False
