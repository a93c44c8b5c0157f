"""The HTTP plumbing under `cascade serve`'s endpoints: bounded concurrency, reading a
request body within its limits, the event-stream response, the access log, and errors
in OpenAI's shape for what no endpoint answers (an unknown path or method)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cascadeflow_cli.clock import format_ts
from cascadeflow_cli.redact import loggable
from cascadeflow_cli.server.shapes import ApiError, bad_request, both_lengths
from cascadeflow_cli.text import json_loads, unique_keys

MAX_BODY_BYTES = 4 * 1024 * 1024
BODY_TIMEOUT_S = 30.0  # a client that sends its body slower than this is dropped (408)
CLIENT_GONE = 499  # nginx's "client closed request": the access log's status, nobody reads the body


def client_gone(what: str) -> ApiError:
    """The answer (unsent) to a client that left: the access log says 499."""
    return ApiError(CLIENT_GONE, f"the client disconnected {what}", code="client_disconnected")


class Limits:
    """Bounded concurrency: ``concurrency`` requests run, ``queue`` wait, the rest get 503."""

    def __init__(self, concurrency: int, queue: int) -> None:
        self.semaphore = asyncio.Semaphore(concurrency)
        self.queue = queue
        self.waiting = 0

    async def acquire(self) -> None:
        # the cheap test first: locked() looks at every waiter (200 clients: 136 of them)
        if self.waiting >= self.queue and self.semaphore.locked():
            raise ApiError(
                503,
                "the server is busy: try again shortly",
                type="server_error",
                code="overloaded",
                headers={"Retry-After": "1"},
            )
        self.waiting += 1
        try:
            await self.semaphore.acquire()
        finally:
            self.waiting -= 1


# Starlette's JSONResponse's rendering (the same bytes), made once, not a JSONEncoder a response
_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class JsonAnswer:
    """A JSON answer as Starlette's JSONResponse sends it (the same body, headers and
    their order), with its header list built in one step: JSONResponse's construction
    was 2.4% of a request's samples (py-spy, in-process, 50 clients)."""

    __slots__ = ("body", "raw_headers", "status_code")

    def __init__(self, content: Any, headers: dict[str, str], status_code: int = 200) -> None:
        self.status_code = status_code
        self.body = _JSON.encode(content).encode()
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        raw.append((b"content-length", str(len(self.body)).encode()))
        raw.append((b"content-type", b"application/json"))
        self.raw_headers = raw

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body})


def error_response(exc: ApiError, request: Request | None = None) -> JSONResponse:
    if request is not None and exc.caller is not None:  # the access log names who was refused
        request.state.key, request.state.user, request.state.request_id = exc.caller
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def bearer(request: Request) -> str | None:
    """The caller's key. Two Authorization headers are a 400: the first one won, so behind
    a proxy that adds its own, which caller paid depended on their order."""
    given = request.headers.getlist("authorization")
    if len(given) > 1:
        raise ApiError(400, f"send one Authorization header, not {len(given)}", param="authorization")
    scheme, _, value = (given[0] if given else "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


async def read_body(request: Request, limit: int) -> Any:
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):  # else a gzip body read as "not valid JSON"
        raise ApiError(415, f"the request body is {loggable(encoding)[:40]}-encoded: send it uncompressed",
                       code="unsupported_content_encoding")
    length = request.headers.get("content-length")
    if length is not None and "transfer-encoding" in request.headers:  # h11 lets both through
        raise bad_request(both_lengths())
    if length is not None and length.isdigit() and int(length) > limit:
        raise ApiError(
            413, f"the request body is larger than {limit // (1024 * 1024)} MB", code="body_too_large"
        )
    data = bytearray()
    receive = request.receive
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            # the messages themselves, as Request.stream() reads them: that async generator
            # (registered with the loop's asyncgen hooks each time) was 2.5% of a request (py-spy)
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":  # it was an uncaught ClientDisconnect:
                    # a traceback in the log and a 500 in the access log (hostile-20)
                    raise client_gone("before its request body arrived")
                if message["type"] != "http.request":
                    continue
                data += message.get("body", b"")
                if len(data) > limit:
                    raise ApiError(
                        413,
                        f"the request body is larger than {limit // (1024 * 1024)} MB",
                        code="body_too_large",
                    )
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise ApiError(408, "the request body did not arrive in time", code="timeout") from None
    try:
        # a key named twice is refused, not read as its last value (what Python's json does;
        # other readers keep the first: a proxy that checked "model" saw another than ours).
        # The hook costs about 14 us a 300-byte body (7.6 -> 21.2 us, load 16), under 1% of a
        # served request
        return json_loads(data, object_pairs_hook=unique_keys)
    except UnicodeDecodeError as exc:  # a Latin-1 body was "not valid JSON": say what it is
        byte = exc.object[exc.start]
        raise bad_request(f"the request body is not UTF-8 (byte 0x{byte:02x} at offset {exc.start}): "
                          "send JSON encoded as UTF-8") from None
    except json.JSONDecodeError:
        raise bad_request("the request body is not valid JSON") from None
    except ValueError as exc:  # unique_keys: it names the key
        raise bad_request(f"the request body is not valid JSON: {exc}") from None


class Last(bytes):
    """An event stream's last part: sent with the stream's end (one write, not two)."""


def watch_disconnect(receive: Callable[[], Any], told: Callable[[], None]) -> asyncio.Future[None]:
    """One plain task listening for the client leaving, once its request's body is read
    (Starlette's StreamingResponse runs an anyio task group a response for that: about a
    sixth of a streamed request's CPU here, py-spy): ``told()`` once if it leaves. Cancel
    the task when the answer is out. The one watcher of a request, streamed or not."""

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        told()

    return asyncio.ensure_future(watch())


class EventStream(Response):
    """An event stream; ``watcher`` (watch_disconnect's task, if any) ends with it."""

    media_type = "text/event-stream"

    def __init__(
        self, body: AsyncIterator[bytes], headers: dict[str, str], watcher: asyncio.Future[None] | None
    ) -> None:
        self.body_iterator = body
        self.status_code = 200
        self.background = None
        self.watcher = watcher
        self.init_headers(headers)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        watcher = self.watcher
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            last = False
            async for part in self.body_iterator:
                last = isinstance(part, Last)
                await send({"type": "http.response.body", "body": part, "more_body": not last})
            if not last:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if watcher is not None:
                watcher.cancel()
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:  # a send that failed left it suspended: its finally records
                await aclose()


_ROUTES = frozenset({"/v1/chat/completions", "/chat/completions", "/v1/models", "/health"})


class AccessLog:
    """One line per request: time, method, path, status, duration, key prefix, user,
    model, request id, cost. No prompt, no answer, no key (only its prefix)."""

    def __init__(self, app: Any, write: Callable[[str], None]) -> None:
        self.app = app
        self.state = app.state
        self.write = write

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        scope.setdefault("state", {})

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            state = scope["state"]
            status = state.get("status", status) or 500
            ms = (time.perf_counter() - started) * 1000
            path = scope["path"]  # the client's: no forged lines, no pasted key
            if path not in _ROUTES:  # ours need no scan (loggable's regex: 0.9% of a request)
                path = loggable(path)
            parts = [format_ts(datetime.now(UTC)), scope["method"], path, str(status), f"{ms:.1f}ms"]
            for name in ("key", "user", "model", "request_id"):
                if state.get(name):  # a user name may hold a line break (`key create` takes it)
                    parts.append(f"{name}={loggable(state[name]) if name == 'user' else state[name]}")
            if "cost" in state:
                parts.append(f"cost={state['cost'] / 1e9:.9f}")
            with contextlib.suppress(Exception):  # a full disk must not fail the request
                self.write(" ".join(parts))


def stderr_log(line: str) -> None:
    sys.stderr.write(line + "\n")


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 and 405 (an unknown path or method) in OpenAI's shape: its
    plain-text page left the SDK's error without a message."""
    status = getattr(exc, "status_code", 500)
    what = {404: f"no such endpoint: {loggable(request.url.path)[:200]} (see GET /v1/models)",
            405: f"{request.method} is not allowed on {loggable(request.url.path)[:200]}"}
    message = what.get(status, getattr(exc, "detail", "") or "the request failed")
    headers = getattr(exc, "headers", None) or {}
    return error_response(ApiError(status, message, code="not_found" if status == 404 else None,
                                   headers=dict(headers)))
