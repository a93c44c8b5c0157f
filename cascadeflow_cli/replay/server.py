"""A local OpenAI-compatible chat-completions server that replays recorded answers.

It stands in for a real provider in ``cascade demo``, in the test suite (reached through real
HTTP) and in the benchmarks. Per model it can answer from recordings, answer a fixed text, be
slow, fail, hang, cut its output off or return garbage (see ``ModelBehavior``).
Standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import math
import select
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from cascadeflow_cli.replay.behavior import ModelBehavior
from cascadeflow_cli.replay.recordings import Recordings, load_recordings
from cascadeflow_cli.replay.signals import logprobs_payload
from cascadeflow_cli.replay.wire import (
    ERRORS,
    GARBAGE,
    WireCompletion,
    bare,
    format_seconds,
    generic_answer,
    invalid,
    last_user_text,
    match_model,
    route,
    same_model,
    sse_event,
    text_of,
    token_limit,
    tokens,
    usage,
)

__all__ = ["ModelBehavior", "Recordings", "ReplayServer", "load_recordings", "spawn"]


class ReplayServer:
    """OpenAI-compatible server on loopback, serving in a daemon thread.

    ``requests`` holds every received JSON request body, for assertions.
    """

    def __init__(
        self,
        recordings: Mapping[str, Mapping[str, str]] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        default: ModelBehavior | None = None,
    ) -> None:
        self.requests: list[dict[str, Any]] = []
        self._recordings = Recordings(recordings)
        self._host = host
        self._port = port
        self._default = default or ModelBehavior()
        self._behaviors: dict[str, ModelBehavior] = {}
        self._failures: dict[str, int] = {}
        self._asked: dict[tuple[str, str], int] = {}  # (model, query) -> requests so far
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._abandoned_count = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._address: tuple[str, int] | None = None

    # -- configuration -------------------------------------------------------------------

    def set_behavior(self, model: str, behavior: ModelBehavior) -> None:
        with self._lock:
            self._behaviors[model] = behavior
            self._failures.pop(bare(model), None)

    def clear_behaviors(self) -> None:
        with self._lock:
            self._behaviors.clear()
            self._failures.clear()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> ReplayServer:
        if self._httpd is not None:
            raise RuntimeError("ReplayServer is already running")
        self._httpd = _HTTPServer((self._host, self._port), self)
        host, port = self._httpd.server_address[:2]
        self._address = (str(host), int(port))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"replay-server-{self._address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.stopping.set()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._address is None:
            raise RuntimeError("ReplayServer has not been started")
        host, port = self._address
        return f"http://{host}:{port}/v1"

    def request_count(self, model: str | None = None) -> int:
        with self._lock:
            if model is None:
                return len(self.requests)
            return sum(1 for body in self.requests if same_model(body.get("model"), model))

    # -- used by the request handler ---------------------------------------------------------

    @property
    def abandoned(self) -> int:
        """Requests whose client closed the connection while this server waited to answer
        or stalled a stream."""
        with self._lock:
            return self._abandoned_count

    def _abandoned(self) -> None:
        with self._lock:
            self._abandoned_count += 1

    def _record(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(body)

    def _behavior_for(self, model: str) -> ModelBehavior:
        with self._lock:
            key = match_model(self._behaviors, model)
            return self._default if key is None else self._behaviors[key]

    def _faults_for(self, model: str, behavior: ModelBehavior) -> ModelBehavior:
        """``behavior`` for this request: without its faults once ``fail_times`` requests
        had them (counted here)."""
        if behavior.fail_times is None:
            return behavior
        with self._lock:
            failed = self._failures.get(bare(model), 0)
            if failed < behavior.fail_times:
                self._failures[bare(model)] = failed + 1
                return behavior
        return replace(behavior, status=None, latency_s=0.0, hang=False, garbage=False, stall_after=None,
                       reset_after=None, close_after=None, reset_before_done=False, fail_times=None,
                       close_unanswered=False)

    def _answer(self, model: str, query: str, behavior: ModelBehavior) -> tuple[str, str]:
        """The answer text and its finish reason, before any max_tokens cut."""
        if behavior.answer is not None:
            return behavior.answer, behavior.finish_reason
        key = match_model(self._recordings, model)
        if key is not None and query in self._recordings[key]:
            if (key, query) in self._recordings.truncated:
                return self._recordings[key][query], "length"
            return self._recordings[key][query], behavior.finish_reason
        return generic_answer(model, query), behavior.finish_reason

    def _sample_texts(
        self, body: dict[str, Any], query: str, answer: str, behavior: ModelBehavior
    ) -> list[str]:
        """The answers of this request's choices: ``n`` of them when honoured, else one;
        without ``n`` each request for the same query takes the next sample in turn."""
        pool = [answer, *(behavior.samples or ())]
        n = body.get("n")
        n = n if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else 1
        if behavior.honor_n and n > 1:
            return [pool[i % len(pool)] for i in range(n)]
        if not behavior.samples:
            return [answer]
        with self._lock:
            key = (bare(body["model"]), query)
            turn = self._asked.get(key, 0)
            self._asked[key] = turn + 1
        return [pool[turn % len(pool)]]

    def _complete(self, body: dict[str, Any], behavior: ModelBehavior) -> WireCompletion:
        model: str = body["model"]
        messages: list[Any] = body["messages"]
        query = last_user_text(messages)
        answer, finish_reason = self._answer(model, query, behavior)
        limit = None if behavior.ignore_max_tokens else token_limit(body)
        choices = []
        for text in self._sample_texts(body, query, answer, behavior):
            finish = finish_reason
            if limit is not None and tokens(text) > limit:
                text, finish = text[: limit * 4], "length"
            choices.append((text, finish))
        logprobs = bool(body.get("logprobs")) and behavior.honor_logprobs
        prompt_chars = sum(len(text_of(m.get("content"))) for m in messages if isinstance(m, dict))
        prompt = behavior.prompt_tokens
        completion = behavior.completion_tokens
        return WireCompletion(
            id=f"chatcmpl-replay-{next(self._ids):08d}",
            created=int(time.time()),
            model=model,
            content=choices[0][0],
            finish_reason=choices[0][1],
            usage=usage(
                math.ceil(prompt_chars / 4) if prompt is None else prompt,
                sum(tokens(t) for t, _ in choices) if completion is None else completion,
                behavior.cached_tokens,
                behavior.reasoning_tokens,
            ),
            extra=[
                {
                    "text": t,
                    "finish_reason": f,
                    "logprobs": logprobs_payload(bare(model), t, behavior.logprob) if logprobs else None,
                }
                for t, f in choices
            ],
        )

    def _models_payload(self) -> dict[str, Any]:
        with self._lock:
            models = sorted(set(self._recordings) | set(self._behaviors))
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "replay"} for m in models]
        return {"object": "list", "data": data}


class _HTTPServer(ThreadingHTTPServer):
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
    server: _HTTPServer

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


def spawn(*args: str, env: Mapping[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """Run the server in another process (`python -m cascadeflow_cli.replay ARGS`, e.g.
    ``"--latency", "0.05"``) on a free port; returns the process and its base URL.
    For benchmarks that need the server outside the measured process."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cascadeflow_cli.replay", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(env) if env is not None else None,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"replay server did not start: {line!r}")
    return proc, line.removeprefix("listening on ")
