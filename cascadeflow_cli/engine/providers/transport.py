"""The HTTP transport of the OpenAI-compatible client: stdlib ``http.client`` with one
keep-alive connection per host per thread.

Chosen over httpx after measuring both: under 32 concurrent calls httpx's shared pool cost
about 2.1 ms of CPU a call against 1.3 ms here (the batch benchmark), and importing it
costs every `cascade ask` about 120 ms. What we need is one POST with a JSON body, a
timeout, and connection reuse; TLS is the ``ssl`` module's default context (verified).
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import select
import socket
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from cascadeflow_cli.engine.providers.cancel import Cancellation
from cascadeflow_cli.text import provider_json

# The most bytes read from one provider response (a whole body, or a whole stream). A
# chat answer of max_tokens 16k is well under 1 MiB even with logprobs and several
# samples; a body past this is a broken or hostile server (a 50 MB answer was once
# accepted and stored twice, and a multi-GB one would exhaust memory).
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
_PIECE = 1 << 16  # a chat answer (a few KiB) is one piece


class TransportTimeout(Exception):
    """No answer within the timeout. ``sent``: the whole request had been written (the
    provider may have it, and bill it), not a connection that could not be made."""

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class TransportError(Exception):
    """The connection could not be made, or broke. ``sent``: after the whole request had
    been written (a connection refused, or a DNS name not found, sent nothing)."""

    def __init__(self, message: str, *, sent: bool = False) -> None:
        super().__init__(message)
        self.sent = sent


class TransportBroken(TransportError):
    """The connection broke after the response began (status line and headers in):
    the server was reached and answered ``received`` bytes of the body, so "cannot
    reach" would mislead (hostile-6). ``reset``: the peer reset it (a TCP RST);
    ``received`` is None where the count is not known."""

    def __init__(self, exc: BaseException, received: int | None) -> None:
        super().__init__(str(exc) or type(exc).__name__, sent=True)
        self.received = received
        self.reset = isinstance(exc, ConnectionResetError)


class TransportTooLarge(TransportError):
    """The response passed MAX_RESPONSE_BYTES; ``received`` bytes were read before stopping."""

    def __init__(self, received: int) -> None:
        super().__init__(f"the response passed {MAX_RESPONSE_BYTES // (1024 * 1024)} MiB")
        self.received = received


class Response:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status_code = status
        self.headers = headers  # http.client's message: case-insensitive .get()
        self.body = body

    def json(self) -> Any:
        return provider_json(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class KeepAliveClient:
    """``post(url, payload, headers, timeout)`` over this thread's connection to the host."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _connections(self) -> dict[tuple[str, str], http.client.HTTPConnection]:
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        return conns

    def post(
        self, url: str, payload: Any, headers: dict[str, str], timeout: float,
        cancel: Cancellation | None = None,
    ) -> Response:
        """The whole answer. ``cancel``: its ``cancel()`` closes the connection meanwhile
        (from any thread), which ends this call with a TransportError."""
        try:
            return self.open_stream(url, payload, headers, timeout, cancel).read()
        finally:
            if cancel is not None:
                cancel.opened(None)

    def open_stream(
        self, url: str, payload: Any, headers: dict[str, str], timeout: float,
        cancel: Cancellation | None = None,
    ) -> StreamResponse:
        """POST and return as soon as the status line and headers are in; the body is
        read line by line (``StreamResponse.lines``). ``timeout`` bounds each read, so a
        provider that stalls mid-stream is a TransportTimeout, not a hang. ``cancel``
        hears of the connection once the request is sent (its close wakes the wait for
        the answer); the caller tells it ``opened(None)`` when done."""
        parts = urlsplit(url)
        conn = self._connection(parts.scheme, parts.netloc, timeout)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        body = json.dumps(payload).encode()
        sent = False  # a failure before the request left costs nothing; after, it may be billed
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
            sent = True
            if cancel is not None:
                cancel.opened(functools.partial(_shut, conn.sock))
            response = conn.getresponse()
        except TimeoutError as exc:
            conn.close()
            raise TransportTimeout(str(exc) or "timed out", sent=sent) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise TransportError(str(exc) or type(exc).__name__, sent=sent) from None
        return StreamResponse(conn, response)

    def _connection(self, scheme: str, netloc: str, timeout: float) -> http.client.HTTPConnection:
        conns = self._connections()
        conn = conns.get((scheme, netloc))
        if conn is not None and conn.sock is not None and _closed_by_peer(conn.sock):
            conn.close()  # the server dropped the idle connection: reconnect on request
        if conn is None:
            cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            conn = conns[(scheme, netloc)] = cls(netloc, timeout=timeout)
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn


class StreamResponse:
    """A response whose body is still on the wire. Read it to the end with ``lines()``
    (the connection is then reused), or ``abort()`` it from any thread (the connection is
    closed, which also wakes a read blocked on it)."""

    def __init__(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        self._conn = conn
        self._response = response
        self._sock = conn.sock
        self.status_code = response.status
        self.headers = response.headers
        self.aborted = False

    def lines(self) -> Iterator[bytes]:
        received = 0
        try:
            # a bounded readline: one endless line must not be buffered whole either
            while line := self._response.readline(MAX_RESPONSE_BYTES + 1 - received):
                received += len(line)
                if received > MAX_RESPONSE_BYTES:
                    self.abort()
                    self.close()
                    raise TransportTooLarge(received)
                yield line
        except TimeoutError as exc:
            self.close()
            raise TransportTimeout(str(exc) or "timed out") from None
        except (OSError, ValueError, http.client.HTTPException) as exc:
            self.close()
            raise TransportBroken(exc, received) from None

    def read(self) -> Response:
        """The rest of the body at once (a whole answer, or an error response)."""
        data = bytearray()
        try:
            # what has come, piece by piece (read1), so a connection that breaks mid-body
            # can say how much had come (read(n) loses a partial piece to the error)
            while piece := self._response.read1(min(_PIECE, MAX_RESPONSE_BYTES + 1 - len(data))):
                data += piece
                if len(data) > MAX_RESPONSE_BYTES:
                    self.abort()
                    self.close()
                    raise TransportTooLarge(len(data))
            # read1 leaves a Content-Length body that was read to its last byte open, and
            # http.client then refuses the connection's next request ("Request-sent"): this
            # read finds nothing more and closes the response, so the connection is reused
            self._response.read()
        except TimeoutError as exc:
            self.close()
            raise TransportTimeout(str(exc) or "timed out") from None
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            partial = exc.partial if isinstance(exc, http.client.IncompleteRead) else b""
            raise TransportBroken(exc, len(data) + len(partial)) from None
        return Response(self.status_code, self.headers, bytes(data))

    def abort(self) -> None:
        self.aborted = True
        _shut(self._sock)

    def close(self) -> None:
        """Drop the connection unless the body was read to its end (then it is reused)."""
        if not self._response.isclosed() or self.aborted:
            self._conn.close()


def _shut(sock: socket.socket | None) -> None:
    """Shut ``sock`` down (from any thread): a read blocked on it returns at once."""
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _closed_by_peer(sock: socket.socket) -> bool:
    """An idle keep-alive socket that is readable has been closed (or sent garbage): the
    same test httpcore makes. poll() has no FD_SETSIZE limit; select() is the fallback."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except AttributeError:  # no poll() on this platform
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)
    except (OSError, ValueError):
        return True
