"""The replay server's HTTP side: one thread a connection, reading a chat request, asking
the ``ReplayServer`` what to answer, and writing it as its model's behavior says (slowly,
streamed, stalled, cut off, reset, or not at all). Telling a client that left while it
waits. ``server.py`` holds what is answered; this, how it goes on the wire."""

from __future__ import annotations

import contextlib
import fcntl
import json
import select
import socket
import struct
import sys
import termios
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.replay.behavior import ModelBehavior
from cascadeflow_cli.replay.wire import (
    ERRORS,
    GARBAGE,
    format_seconds,
    invalid,
    route,
    sse_event,
    token_limit,
)

if TYPE_CHECKING:
    from cascadeflow_cli.replay.server import ReplayServer


class ReplayHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], replay: ReplayServer) -> None:
        self.replay = replay
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(conn)

    def close_connections(self) -> None:
        """End idle keep-alive connections so their handler threads exit."""
        with self._connections_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client that went away is no error
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: ReplayHTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def handle(self) -> None:
        with contextlib.suppress(OSError):  # BrokenPipe, ConnectionReset: the client left
            super().handle()

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the demo and the tests own the terminal."""

    def do_GET(self) -> None:
        if route(self.path) == "/models":
            self._send_json(200, self.server.replay._models_payload())
        else:
            self._send_error(404, f"Unknown path: {self.path}")

    def do_POST(self) -> None:
        self.reshape: Any = None  # set by _chat from the model's behavior
        body = self._read_body()
        if route(self.path) != "/chat/completions":
            self._send_error(404, f"Unknown path: {self.path}")
            return
        try:
            payload = json.loads(body)
        except ValueError:
            self._send_error(400, "We could not parse the JSON body of your request.")
            return
        if not isinstance(payload, dict):
            self._send_error(400, "The request body must be a JSON object.")
            return
        self._chat(payload)

    def _chat(self, payload: dict[str, Any]) -> None:
        replay = self.server.replay
        replay._record(payload)
        problem = invalid(payload)
        if problem:
            self._send_error(400, problem)
            return
        behavior = replay._faults_for(payload["model"], replay._behavior_for(payload["model"]))
        self.reshape = behavior.reshape
        if self._wait(None if behavior.hang else behavior.latency_s):
            self.close_connection = True  # stopping, or the client left: leave without an answer
            return
        if behavior.close_unanswered:
            self.close_connection = True  # nothing written: the client sees the connection end
            return
        status = behavior.status
        asked, most = token_limit(payload), behavior.max_tokens_limit
        if most is not None and asked is not None and asked > most:  # OpenAI's words
            self._send_error(400, f"max_tokens is too large: {asked}. This model supports at most "
                                  f"{most} completion tokens, whereas you provided {asked}.")
        elif status is not None:
            self._send_error(status, retry_after=behavior.retry_after)
        elif behavior.garbage:
            self._send(200, GARBAGE, "text/html; charset=utf-8")
        elif payload.get("stream") and not behavior.ignore_stream:
            options = payload.get("stream_options") or {}
            completion = replay._complete(payload, behavior)
            events = completion.chunks(bool(options.get("include_usage")), behavior.empty_stream)
            self._stream([*events, "[DONE]"], behavior)
        elif behavior.reset_after is not None:  # whole answers: reset after that many body bytes
            body = json.dumps(replay._complete(payload, behavior).response()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: behavior.reset_after])
            self._reset(drain=True)
        else:
            self._send_json(200, replay._complete(payload, behavior).response())

    def _stream(self, events: list[Any], behavior: ModelBehavior) -> None:
        """Server-sent events, one HTTP chunk each, flushed as they go (a client sees the
        first token before the last is sent); paused and stalled as ``behavior`` says."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        content = 0
        for event in events:
            if isinstance(event, dict) and any(c.get("delta", {}).get("content") for c in event["choices"]):
                if behavior.stall_after is not None and content >= behavior.stall_after:
                    self._stall()
                    return
                if behavior.reset_after is not None and content >= behavior.reset_after:
                    self._reset()
                    return
                if behavior.close_after is not None and content >= behavior.close_after:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_WR)
                    return
                content += 1
            if event == "[DONE]" and behavior.reset_before_done:
                self._reset(drain=True)
                return
            data = sse_event(self.reshape(event) if self.reshape and isinstance(event, dict) else event)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            if behavior.stream_delay_s and self.server.stopping.wait(behavior.stream_delay_s):
                self.close_connection = True
                return
        self.wfile.write(b"0\r\n\r\n")

    def _reset(self, *, drain: bool = False) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0), as a dying proxy does. An RST
        drops what is still unsent; with ``drain``, wait (up to 2 s) until the client's
        kernel has acknowledged everything sent, so exactly the rest is lost."""
        self.close_connection = True
        self.wfile.flush()
        for _ in range(400) if drain and hasattr(termios, "TIOCOUTQ") else ():
            unsent = fcntl.ioctl(self.connection.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
            if struct.unpack("i", unsent)[0] == 0 or self.server.stopping.wait(0.005):
                break
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def _wait(self, seconds: float | None) -> bool:
        """The answer's latency; True when the server stops or the client closed the
        connection meanwhile (counted in ``ReplayServer.abandoned``, as a provider that
        sees its caller gone)."""
        end = None if seconds is None else time.monotonic() + seconds
        while True:
            step = 0.02 if end is None else min(0.02, end - time.monotonic())
            if step <= 0:
                return False
            if self.server.stopping.wait(step):
                return True
            if _peer_closed(self.connection):
                self.server.replay._abandoned()
                return True

    def _stall(self) -> None:
        """Send nothing more until the server stops or the client closes the connection
        (counted in ``ReplayServer.abandoned``: the test of a client that hung up on us)."""
        self.close_connection = True
        while not self.server.stopping.wait(0.02):
            if _peer_closed(self.connection):
                self.server.replay._abandoned()
                return

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length", ""))
            if length < 0:
                raise ValueError(length)
        except ValueError:
            self.close_connection = True  # unknown framing: this connection cannot be reused
            return b""
        return self.rfile.read(length)

    def _send_error(
        self, status: int, message: str | None = None, *, retry_after: float | None = None
    ) -> None:
        kind, code, default_message = ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error.")
        )
        error = {"message": message or default_message, "type": kind, "param": None, "code": code}
        headers = {} if retry_after is None else {"Retry-After": format_seconds(retry_after)}
        self._send_json(status, {"error": error}, headers)

    def _send_json(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        reshape = getattr(self, "reshape", None)  # GET has none
        self._send(status, json.dumps(reshape(payload) if reshape else payload).encode(),
                   "application/json", headers)

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def _peer_closed(conn: socket.socket) -> bool:
    readable, _, _ = select.select([conn], [], [], 0)
    if not readable:
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
