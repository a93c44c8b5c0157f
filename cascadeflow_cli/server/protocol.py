"""uvicorn's HTTP protocol for `cascade serve`, answering a request it cannot parse in
OpenAI's error shape. uvicorn's own answer is a text/plain 400 ("Invalid HTTP request
received."), which the openai SDK and every client written for OpenAI's API cannot read as
an error: a request with both Content-Length and Transfer-Encoding (RFC 9112 §6.3: a
request smuggling vector, refused), a malformed request line or header. It also bounds
what uvicorn does not: how long and how large a request's headers may be (hostile-20).
Imported only by `cascade serve` (uvicorn is its extra)."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol  # httptools when installed, else h11

from cascadeflow_cli.server.shapes import ApiError, bad_request, both_lengths

# A request's headers must arrive within this (as its body must: server/http.py): uvicorn
# had no such limit, so a client sending a header line a second (slowloris) held its
# connection for good, and a few thousand such clients every file descriptor
HEAD_TIMEOUT_S = 30.0
# and be at most this large: with httptools, one client sending an endless header took the
# server to 565 MB and a core within two minutes (h11 stops at uvicorn's 16 KB already)
MAX_HEAD_BYTES = 64 * 1024
# A client's FIN with its request in flight is a half-close (HTTP/1.0 tools, `nc -N`: still
# reading) or a close, the same on the wire: the transport stays open for the answer, and an
# HTTP/1.1 client is probed with an interim 100 (every client parses 1xx before the final
# response, RFC 9110 §15.2). One that closed answers the first probe with an RST, the next
# write fails, and the request sees http.disconnect (the cascade stops). HTTP/1.0 may not
# be sent a 1xx: such a client that closed is found only when the answer is written (its
# cascade runs to the end, paid for, as before hang-ups were told). That includes a client
# gone from behind nginx at its default `proxy_http_version 1.0` (it closes upstream): at
# 1.1, the probe tells it. uvicorn alone took every FIN for a close (http.disconnect).
PROBE = b"HTTP/1.1 100 Continue\r\n\r\n"
PROBE_EVERY_S = 0.25


def parse_error_message(exc: BaseException | None) -> str:
    """One line saying why the request could not be parsed, from the parser's error."""
    detail = " ".join(str(exc).split()) if exc is not None else ""
    words = detail.lower().replace("-", " ").replace("_", " ")
    if "content length" in words and "transfer encoding" in words:
        return both_lengths()
    return "the request is not valid HTTP" + (f": {detail[:200]}" if detail else "")


class OpenAIErrorsProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    """uvicorn's protocol with its 400 for an unparsable request as a JSON error body, and
    a deadline and a size limit for each request's headers."""

    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes = 0  # received since the connection (or its last response) ended a request
    _running: Any = None  # httptools: the request whose app runs (``cycle`` is the latest parsed)
    _half_closed = False  # the client sent its FIN while its request was in flight
    _probe_timer: asyncio.TimerHandle | None = None

    def send_400_response(self, msg: str) -> None:
        # called from the parser's except clause: the error in hand says why
        self._refuse(bad_request(parse_error_message(sys.exc_info()[1])), b"Bad Request")

    def _refuse(self, error: ApiError, reason: bytes) -> None:
        body = json.dumps(error.body()).encode()
        head = (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n" % (error.status, reason, len(body)))
        self.transport.write(head + body)
        self.transport.close()

    def _awaiting_head(self) -> bool:
        """No request is in flight or queued: the next one's headers are awaited (the
        parser's latest request, ``cycle``, is answered)."""
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_late)

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._awaiting_head():
            return  # a request is in flight: its response re-arms the deadline
        if self._head_bytes == 0:  # an idle connection: closed as uvicorn's keep-alive does
            self.transport.close()
            return
        self.logger.warning("Request headers did not arrive in time.")
        self._refuse(ApiError(408, "the request headers did not arrive in time", code="timeout"),
                     b"Request Timeout")

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        cycle, awaiting = self.cycle, self._awaiting_head()
        super().data_received(data)
        if self.cycle is not cycle or not awaiting or self.transport.is_closing():
            return  # headers complete (the body has its own limits), or not ours to count
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            self.logger.warning("Request headers too large.")
            self._refuse(ApiError(431, f"the request headers are larger than {MAX_HEAD_BYTES // 1024} KB",
                                  code="headers_too_large"), b"Request Header Fields Too Large")

    def eof_received(self) -> bool | None:
        cycle = self.cycle
        if cycle is None or cycle.response_complete or cycle.more_body:
            return None  # idle, or its request cut short: the transport closes (uvicorn's way)
        self._half_closed = True
        self._probe()
        return True  # the answer is still to be written

    def _probe(self) -> None:
        self._probe_timer = None
        cycle = self.cycle
        if self.transport.is_closing() or cycle is None or cycle.response_started:
            return  # the answer's own writes tell from here on
        if self._running is not None and self._running is not cycle:
            return  # pipelined: a 1xx would land inside the running request's answer
        if cycle.scope.get("http_version") != "1.1":
            return
        self.transport.write(PROBE)
        self._probe_timer = self.loop.call_later(PROBE_EVERY_S, self._probe)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._half_closed and self._awaiting_head():  # all it sent is answered: nothing more can come
            self.transport.close()
            return
        if not self.transport.is_closing():
            self._arm()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:  # httptools only
        self._running = cycle
        super()._start_asgi_task(cycle, app)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self._probe_timer is not None:
            self._probe_timer.cancel()
            self._probe_timer = None
        running = self._running
        super().connection_lost(exc)
        if running is not None and running is not self.cycle and not running.response_complete:
            # uvicorn tells only the latest parsed request: with requests pipelined behind it,
            # the running one wrote its answer to the closed socket ("RuntimeError: unable to
            # perform operation on <TCPTransport closed=True>", a traceback every time)
            running.disconnected = True
            running.message_event.set()
