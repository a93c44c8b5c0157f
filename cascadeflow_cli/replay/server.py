"""A local OpenAI-compatible chat-completions server that replays recorded answers.

It stands in for a real provider in ``cascade demo``, in the test suite (reached through real
HTTP) and in the benchmarks. Per model it can answer from recordings, answer a fixed text, be
slow, fail, hang, cut its output off or return garbage (see ``ModelBehavior``).
Standard library only.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from cascadeflow_cli.replay.signals import logprobs_payload

__all__ = ["ModelBehavior", "Recordings", "ReplayServer", "load_recordings"]

_GARBAGE = b"<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"
_STREAM_PIECE_WORDS = 3

# status -> (error type, error code, message), shaped like OpenAI's error bodies
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Bad request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("permission_error", None, "You are not allowed to sample from this model."),
    404: ("invalid_request_error", "not_found", "Not found."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded. Please try again later."),
}


@dataclass
class ModelBehavior:
    """How the server answers one model (or every model, as the default)."""

    answer: str | None = None  # None: recordings, else a generic deterministic answer
    prompt_tokens: int | None = None  # default ceil(chars of all messages / 4)
    completion_tokens: int | None = None  # default ceil(chars of the answer / 4)
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    latency_s: float = 0.0
    status: int | None = None  # answer with this HTTP error status
    fail_times: int | None = None  # with status: fail only the first N requests
    retry_after: float | None = None  # Retry-After header on error responses
    finish_reason: str = "stop"
    garbage: bool = False  # 200 with a non-JSON body
    hang: bool = False  # never answer (until the server stops)
    # live quality signals (issue 9): a real provider may honour `logprobs` and `n`, or not
    honor_logprobs: bool = True  # False: answer as if `logprobs` had not been asked
    honor_n: bool = True  # False: always one choice, whatever `n` says
    logprob: float | None = None  # every token's log-probability; None: derived from the token
    # answers of the 2nd, 3rd... sample (cycled); the same answer again when None. Without
    # `n`, successive requests for the same query walk through [answer, *samples].
    samples: tuple[str, ...] | None = None


class Recordings(dict[str, dict[str, str]]):
    """``model -> {query -> answer}``, plus the ``(model, query)`` pairs whose recorded answer was
    cut off by the token limit; those are served with finish_reason "length"."""

    def __init__(self, answers: Mapping[str, Mapping[str, str]] | None = None) -> None:
        super().__init__()
        self.truncated: set[tuple[str, str]] = set()
        if answers:
            self.merge(answers)

    def add(self, model: str, query: str, answer: str, *, truncated: bool = False) -> None:
        key = query.strip()
        self.setdefault(model, {})[key] = answer
        if truncated:
            self.truncated.add((model, key))
        else:
            self.truncated.discard((model, key))

    def merge(self, other: Mapping[str, Mapping[str, str]]) -> None:
        """Add every answer of ``other`` (a plain dict or ``Recordings``), keeping its flags."""
        cut: set[tuple[str, str]] = getattr(other, "truncated", set())
        for model, answers in other.items():
            for query, answer in answers.items():
                self.add(model, query, answer, truncated=(model, query.strip()) in cut)


def load_recordings(path: str | Path) -> Recordings:
    """Read recorded answers from a JSONL file.

    Two row shapes: the demo file's ``{"query", "answers": {model: answer}, "truncate":
    {model: true}?}`` and the GSM8K replay file's ``{"query", "draft_model", "draft_answer",
    "verifier_model", "verifier_answer", ...}``.
    """
    recordings = Recordings()
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: not valid JSON ({exc})") from exc
            _add_row(recordings, row, where)
    return recordings


def _add_row(recordings: Recordings, row: Any, where: str) -> None:
    if not isinstance(row, dict) or not isinstance(row.get("query"), str):
        raise ValueError(f"{where}: expected a JSON object with a 'query' string")
    query = row["query"]
    if isinstance(row.get("answers"), dict):
        truncate = row.get("truncate") or {}
        for model, answer in row["answers"].items():
            recordings.add(model, query, answer, truncated=bool(truncate.get(model)))
    elif "draft_model" in row and "verifier_model" in row:
        recordings.add(row["draft_model"], query, row["draft_answer"])
        recordings.add(row["verifier_model"], query, row["verifier_answer"])
    else:
        raise ValueError(f"{where}: expected 'answers' or 'draft_model'/'verifier_model' fields")


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
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._address: tuple[str, int] | None = None

    # -- configuration -------------------------------------------------------------------

    def set_behavior(self, model: str, behavior: ModelBehavior) -> None:
        with self._lock:
            self._behaviors[model] = behavior
            self._failures.pop(_bare(model), None)

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
            return sum(1 for body in self.requests if _same_model(body.get("model"), model))

    # -- used by the request handler ---------------------------------------------------------

    def _record(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(body)

    def _behavior_for(self, model: str) -> ModelBehavior:
        with self._lock:
            key = _match_model(self._behaviors, model)
            return self._default if key is None else self._behaviors[key]

    def _failure_status(self, model: str, behavior: ModelBehavior) -> int | None:
        """The error status this request gets, if any; counts failures for ``fail_times``."""
        if behavior.status is None or behavior.fail_times is None:
            return behavior.status
        with self._lock:
            failed = self._failures.get(_bare(model), 0)
            if failed >= behavior.fail_times:
                return None
            self._failures[_bare(model)] = failed + 1
            return behavior.status

    def _answer(self, model: str, query: str, behavior: ModelBehavior) -> tuple[str, str]:
        """The answer text and its finish reason, before any max_tokens cut."""
        if behavior.answer is not None:
            return behavior.answer, behavior.finish_reason
        key = _match_model(self._recordings, model)
        if key is not None and query in self._recordings[key]:
            if (key, query) in self._recordings.truncated:
                return self._recordings[key][query], "length"
            return self._recordings[key][query], behavior.finish_reason
        return _generic_answer(model, query), behavior.finish_reason

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
            key = (_bare(body["model"]), query)
            turn = self._asked.get(key, 0)
            self._asked[key] = turn + 1
        return [pool[turn % len(pool)]]

    def _complete(self, body: dict[str, Any], behavior: ModelBehavior) -> _Completion:
        model: str = body["model"]
        messages: list[Any] = body["messages"]
        query = _last_user_text(messages)
        answer, finish_reason = self._answer(model, query, behavior)
        limit = _token_limit(body)
        choices = []
        for text in self._sample_texts(body, query, answer, behavior):
            finish = finish_reason
            if limit is not None and _tokens(text) > limit:
                text, finish = text[: limit * 4], "length"
            choices.append((text, finish))
        logprobs = bool(body.get("logprobs")) and behavior.honor_logprobs
        prompt_chars = sum(len(_text(m.get("content"))) for m in messages if isinstance(m, dict))
        prompt = behavior.prompt_tokens
        completion = behavior.completion_tokens
        return _Completion(
            id=f"chatcmpl-replay-{next(self._ids):08d}",
            created=int(time.time()),
            model=model,
            content=choices[0][0],
            finish_reason=choices[0][1],
            usage=_usage(
                math.ceil(prompt_chars / 4) if prompt is None else prompt,
                sum(_tokens(t) for t, _ in choices) if completion is None else completion,
                behavior.cached_tokens,
                behavior.reasoning_tokens,
            ),
            extra=[
                {
                    "text": t,
                    "finish_reason": f,
                    "logprobs": logprobs_payload(_bare(model), t, behavior.logprob) if logprobs else None,
                }
                for t, f in choices
            ],
        )

    def _models_payload(self) -> dict[str, Any]:
        with self._lock:
            models = sorted(set(self._recordings) | set(self._behaviors))
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "replay"} for m in models]
        return {"object": "list", "data": data}


@dataclass
class _Completion:
    id: str
    created: int
    model: str
    content: str
    finish_reason: str
    usage: dict[str, Any]
    extra: list[dict[str, Any]] | None = None  # every choice: text, finish_reason, logprobs

    def response(self) -> dict[str, Any]:
        """The non-streaming ``chat.completion`` object."""
        choices = self.extra or [
            {"text": self.content, "finish_reason": self.finish_reason, "logprobs": None}
        ]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": c["text"]},
                    "logprobs": c["logprobs"],
                    "finish_reason": c["finish_reason"],
                }
                for i, c in enumerate(choices)
            ],
            "usage": self.usage,
        }

    def chunks(self, include_usage: bool) -> Iterator[dict[str, Any]]:
        """The ``chat.completion.chunk`` objects of a streamed answer."""
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        deltas += [{"content": piece} for piece in _pieces(self.content)]
        for delta in deltas:
            yield self._chunk([_delta_choice(delta, None)], include_usage)
        yield self._chunk([_delta_choice({}, self.finish_reason)], include_usage)
        if include_usage:
            yield {**self._chunk([], include_usage), "usage": self.usage}

    def _chunk(self, choices: list[dict[str, Any]], include_usage: bool) -> dict[str, Any]:
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        return {**chunk, "usage": None} if include_usage else chunk


def _delta_choice(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


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
        if _route(self.path) == "/models":
            self._send_json(200, self.server.replay._models_payload())
        else:
            self._send_error(404, f"Unknown path: {self.path}")

    def do_POST(self) -> None:
        body = self._read_body()
        if _route(self.path) != "/chat/completions":
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
        problem = _invalid(payload)
        if problem:
            self._send_error(400, problem)
            return
        behavior = replay._behavior_for(payload["model"])
        if self.server.stopping.wait(None if behavior.hang else behavior.latency_s):
            self.close_connection = True  # the server is stopping: leave without an answer
            return
        status = replay._failure_status(payload["model"], behavior)
        if status is not None:
            self._send_error(status, retry_after=behavior.retry_after)
        elif behavior.garbage:
            self._send(200, _GARBAGE, "text/html; charset=utf-8")
        elif payload.get("stream"):
            options = payload.get("stream_options") or {}
            completion = replay._complete(payload, behavior)
            events = [*completion.chunks(bool(options.get("include_usage"))), "[DONE]"]
            self._send(200, _sse(events), "text/event-stream; charset=utf-8")
        else:
            self._send_json(200, replay._complete(payload, behavior).response())

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
        kind, code, default_message = _ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error.")
        )
        error = {"message": message or default_message, "type": kind, "param": None, "code": code}
        headers = {} if retry_after is None else {"Retry-After": _format_seconds(retry_after)}
        self._send_json(status, {"error": error}, headers)

    def _send_json(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

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


def _route(path: str) -> str:
    """The endpoint of a request path, without query string, ``/v1`` prefix or final slash."""
    path = path.split("?", 1)[0].rstrip("/")
    return path.removeprefix("/v1")


def _invalid(payload: dict[str, Any]) -> str | None:
    if not isinstance(payload.get("model"), str) or not payload["model"]:
        return "You must provide a model parameter."
    if not isinstance(payload.get("messages"), list) or not payload["messages"]:
        return "'messages' must be a non-empty array."
    return None


def _bare(model: str) -> str:
    """A model id without its provider prefix: "openai/gpt-4o" -> "gpt-4o"."""
    return model.split("/", 1)[1] if "/" in model else model


def _same_model(sent: Any, model: str) -> bool:
    return isinstance(sent, str) and (sent == model or _bare(sent) == _bare(model))


def _match_model(known: Iterable[str], model: str) -> str | None:
    """The known model id that ``model`` names, exactly or with a provider prefix stripped."""
    keys = list(known)
    if model in keys:
        return model
    return next((key for key in keys if _same_model(key, model)), None)


def _text(content: Any) -> str:
    """The text of a message's content: a string or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text(message.get("content")).strip()
    return ""


def _token_limit(body: dict[str, Any]) -> int | None:
    for field in ("max_completion_tokens", "max_tokens"):
        value = body.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _usage(prompt: int, completion: int, cached: int, reasoning: int) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    if reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage


def _generic_answer(model: str, query: str) -> str:
    return (
        f"Replayed answer from {model}. The replay server has no recording for this query, "
        f"so it returns this deterministic placeholder in its place. The query was: {query}"
    )


def _pieces(text: str) -> list[str]:
    """Split an answer into stream deltas of a few words each (whitespace kept)."""
    words = re.findall(r"\s*\S+\s*", text) or ([text] if text else [])
    step = _STREAM_PIECE_WORDS
    return ["".join(words[i : i + step]) for i in range(0, len(words), step)]


def _sse(events: list[Any]) -> bytes:
    lines = (f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events)
    return "".join(lines).encode()


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


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
