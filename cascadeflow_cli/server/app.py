"""The ASGI app of `cascade serve` (Starlette): its routes, the chat endpoint's plain and
streamed answers (the plumbing under them: server/http.py). Importing this module imports
Starlette: only `serve` does.

Starlette rather than FastAPI: the endpoint has three routes whose shapes OpenAI fixes
(we validate them by hand, in server/shapes.py, to answer OpenAI's error shape exactly),
so FastAPI's pydantic models and OpenAPI generation would only add start-up time and
dependencies (see README: importing fastapi took about 3x as long as starlette here).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cascadeflow_cli import __version__
from cascadeflow_cli.engine.providers.cancel import GONE, Cancellation
from cascadeflow_cli.engine.providers.stream import StreamInterrupted, StreamSink
from cascadeflow_cli.server.http import (
    CLIENT_GONE,
    MAX_BODY_BYTES,
    AccessLog,
    EventStream,
    JsonAnswer,
    Last,
    Limits,
    bearer,
    error_response,
    http_error,
    read_body,
    watch_disconnect,
)
from cascadeflow_cli.server.runner import Outcome, Runner
from cascadeflow_cli.server.shapes import (
    ApiError,
    ChatCall,
    cascade_headers,
    chat_completion,
    chunk,
    completion_id,
    extension,
    header_text,
    model_names,
    parse_chat,
    usage,
)

if TYPE_CHECKING:
    from cascadeflow_cli.config import AppConfig

SHUTDOWN_REASON = "the server is shutting down"


@dataclass
class ServeOptions:
    concurrency: int = 64  # requests in the cascade at once, per process (the thread pool)
    queue: int = 1024  # requests waiting for a thread; beyond that, 503
    max_body: int = MAX_BODY_BYTES
    access_log: Callable[[str], None] | None = field(default=None)


def create_app(
    config: AppConfig, runner: Runner, options: ServeOptions | None = None, *, lifespan: Any = None
) -> Starlette:
    """The app over ``runner`` (closed by ``lifespan``, or by the caller after the server stops)."""
    options = options or ServeOptions()
    limits: Limits | None = None  # made on first use: its semaphore belongs to the server's loop
    streams: set[StreamSink] = set()  # open streams, for a shutdown to cut after its grace period

    def _limits() -> Limits:
        nonlocal limits
        if limits is None:
            limits = Limits(options.concurrency, options.queue)
        return limits

    async def in_pool(fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` holding one of the concurrency slots: in this task when the runner
        is bridged (server/bridge.py), else on a pool thread."""
        slots = _limits()
        await slots.acquire()
        try:
            return await runner.call(fn, *args)
        finally:
            slots.semaphore.release()

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    async def models(request: Request) -> Response:
        try:
            caller = await in_pool(runner.authenticate, bearer(request))
        except ApiError as exc:
            return error_response(exc)
        request.state.key = caller.prefix
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "cascadeflow"}
            for name in model_names(config)
        ]
        return JSONResponse({"object": "list", "data": data})

    async def chat(request: Request) -> Response | JsonAnswer:
        try:
            try:
                call = parse_chat(config, await read_body(request, options.max_body))
            except ApiError as exc:
                # a bad body from an unknown caller is a 401, as OpenAI answers
                if exc.status not in (413, CLIENT_GONE):
                    await in_pool(runner.authenticate, bearer(request))
                raise
            request.scope.setdefault("state", {})["model"] = call.target.name
            if call.stream:
                return await _stream(request, call)
            # a client that hangs up stops the cascade: no verifier is asked for nobody
            cancel = Cancellation()
            watcher = watch_disconnect(request.receive, lambda: cancel.cancel(_gone(request)))
            try:
                caller, outcome = await in_pool(
                    runner.answer, bearer(request), call, None, None, None, _trace(request, runner), cancel
                )
            finally:
                watcher.cancel()
        except ApiError as exc:
            return error_response(exc, request)
        _note(request, caller.prefix, caller.user, outcome)
        body = chat_completion(call.target.name, outcome.result, outcome.finish_reason, outcome.record)
        return JsonAnswer(body, _headers(outcome))

    async def _stream(request: Request, call: ChatCall) -> Response:
        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()
        events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def push(kind: str, value: Any) -> None:
            if threading.get_ident() == loop_thread:  # bridged: the cascade runs in a task
                events.put_nowait((kind, value))
                return
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
                loop.call_soon_threadsafe(events.put_nowait, (kind, value))

        sink = StreamSink(lambda text: push("delta", text))
        trace = _trace(request, runner)
        streams.add(sink)

        def gone() -> None:  # from the draft on: a client gone before any token stops the cascade
            sink.cancel(_gone(request))
            events.put_nowait(("gone", None))

        watcher = watch_disconnect(request.receive, gone)

        def work() -> None:
            try:
                push(
                    "done",
                    runner.answer(
                        bearer(request),
                        call,
                        sink,
                        lambda *s: push("start", s),
                        lambda o: push("whole", o),
                        trace,
                    ),
                )
            except BaseException as exc:  # ApiError, StreamInterrupted, anything: the reader decides
                push("error", exc)

        slots = _limits()
        try:
            await slots.acquire()
        except ApiError:
            watcher.cancel()
            streams.discard(sink)
            raise
        future = runner.start(work)
        future.add_done_callback(lambda _: slots.semaphore.release())
        started: tuple[str, Any] | None = None  # (request id, budget decision), before any call
        kind, value = await events.get()
        while kind == "start":
            started = value
            kind, value = await events.get()
        if kind in ("error", "gone"):  # no answer to stream: the response is an error
            left = kind == "gone" or watcher.done()  # the watcher ended: it saw the client leave
            watcher.cancel()
            streams.discard(sink)
            if isinstance(value, ApiError):
                return error_response(value, request)
            if kind == "gone" or isinstance(value, StreamInterrupted):
                # the client left before the first token (the cascade stops, recorded as
                # interrupted), or the server cut it while stopping: a KeyboardInterrupt
                # raised here would end the event loop
                return error_response(ApiError(499, sink.reason, type="client_closed_request")
                                      if left else ApiError(503, sink.reason, type="server_error"), request)
            raise value
        created = int(time.time())
        headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        if kind in ("whole", "done"):  # an accepted draft: everything is known before the first byte
            outcome = value if kind == "whole" else value[1]
            headers |= _headers(outcome)
            cid = completion_id(outcome.result.request_id)
        else:  # the final model streams: its cost comes in the last chunk
            assert started is not None
            request_id, decision = started
            cid = completion_id(request_id)
            headers |= {
                "x-cascade-request-id": request_id,
                "x-cascade-model": header_text(decision.models[-1]) if decision.models else "",
                "x-cascade-draft-accepted": "false",
                "x-cascade-enforcement": decision.action,
            }
            request.state.request_id = request_id
        return EventStream(
            _sse(request, call, sink, events, (kind, value), cid, created),
            headers,
            watcher,
        )

    async def _sse(
        request: Request,
        call: ChatCall,
        sink: StreamSink,
        events: asyncio.Queue[tuple[str, Any]],
        first: tuple[str, Any],
        cid: str,
        created: int,
    ) -> AsyncIterator[bytes]:
        name = call.target.name
        finished = False
        head, tail = _delta_template(cid, name, created, call.include_usage)
        # the events already queued go out as one body part (one write, one TCP segment):
        # an accepted draft's dozen pieces were a dozen sends through uvicorn, +0.15 ms of
        # CPU a streamed request; an escalated answer's tokens still go as they come
        out = [_event(chunk(cid, name, created, {"role": "assistant", "content": ""},
                            include_usage=call.include_usage))]
        try:
            kind, value = first
            while True:
                if kind == "gone":  # the client left: the finally below cancels the answer
                    return
                if kind == "whole":
                    pass
                elif kind == "delta":
                    out.append(head + _json_text(value).encode() + tail)
                elif kind == "done":
                    caller, outcome = value
                    _note(request, caller.prefix, caller.user, outcome)
                    final = chunk(
                        cid,
                        name,
                        created,
                        {},
                        outcome.finish_reason or "stop",
                        include_usage=call.include_usage,
                    )
                    final["cascade"] = extension(outcome.result)
                    out.append(_event(final))
                    if call.include_usage:
                        last = chunk(cid, name, created, {}, include_usage=True)
                        last["choices"] = []
                        last["usage"] = usage(outcome.result, outcome.record)
                        out.append(_event(last))
                    out.append(b"data: [DONE]\n\n")
                    yield Last(b"".join(out))
                    finished = True
                    return
                else:
                    finished = True
                    error = (
                        value
                        if isinstance(value, ApiError)
                        else ApiError(
                            500,
                            value.reason
                            if isinstance(value, StreamInterrupted)
                            else f"unexpected {type(value).__name__}",
                            type="server_error",
                        )
                    )
                    request.state.status = error.status
                    out.append(_event(error.body()))
                    yield Last(b"".join(out))
                    return
                if events.empty():  # nothing more yet: what we have goes out, then wait
                    yield b"".join(out)
                    out = []
                    kind, value = await events.get()
                else:
                    kind, value = events.get_nowait()
        finally:
            streams.discard(sink)
            if not finished:  # the client left (or the server is stopping) mid-stream
                sink.cancel(_gone(request))
                request.state.status = 499

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/chat/completions", chat, methods=["POST"]),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},
    )
    app.state.stopping = False
    app.state.streams = streams
    front: Any = _Direct(app, chat)
    if options.access_log is not None:
        front = AccessLog(front, options.access_log)
    return front  # type: ignore[no-any-return]


class _Direct:
    """``POST /v1/chat/completions`` straight to its endpoint; every other request through
    Starlette. Its router and two middlewares (matching four routes, wrapping ``send``
    twice) were about a fifth of a request's time on the main thread (py-spy, 50 clients).
    An exception the endpoint does not turn into an answer reaches uvicorn, which answers
    500 as Starlette's error middleware would. Reads ``state`` as the app it stands for."""

    _paths = frozenset({"/v1/chat/completions", "/chat/completions"})

    def __init__(self, app: Starlette, chat: Callable[[Request], Any]) -> None:
        self.app = app
        self.state = app.state
        self.chat = chat

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self._paths:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app  # what Starlette sets: request.app.state (stopping) is read
        response = await self.chat(Request(scope, receive, send))
        await response(scope, receive, send)


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


_json_text = json.encoder.encode_basestring  # a str as json.dumps(ensure_ascii=False) writes it
_MARK = "\x00"


def _delta_template(cid: str, name: str, created: int, include_usage: bool) -> tuple[bytes, bytes]:
    """A content chunk's event around its text: ``chunk()``'s own bytes, cut where the
    text goes (after every field a client sent: only fixed keys follow), so each piece
    costs one string encoding, not a dict and a json.dumps."""
    whole = _event(chunk(cid, name, created, {"content": _MARK}, include_usage=include_usage))
    head, _, tail = whole.rpartition(_json_text(_MARK).encode())
    return head, tail


def _gone(request: Request) -> str:
    """Why a request's client is gone: it left, or the server is stopping."""
    return SHUTDOWN_REASON if getattr(request.app.state, "stopping", False) else GONE


def _trace(request: Request, runner: Runner) -> tuple[str | None, str | None]:
    if not runner.traced:  # two header scans a request for nothing
        return None, None
    return request.headers.get("traceparent"), request.headers.get("tracestate")


def _headers(outcome: Outcome) -> dict[str, str]:
    headers = cascade_headers(outcome.result)
    headers["x-cascade-enforcement"] = outcome.result.record.enforcement
    if not outcome.recorded:
        headers["x-cascade-recorded"] = "false"
    return headers


def _note(request: Request, key: str, user: str, outcome: Outcome) -> None:
    """What the access log line says about this request (never the prompt or the key)."""
    # the dict request.state wraps, written directly: State.__setattr__ is Python, 4 a request
    request.scope.setdefault("state", {}).update(
        key=key, user=user, request_id=outcome.result.record.id, cost=outcome.result.record.cost_nusd
    )


def cut_streams(app: Any, reason: str = SHUTDOWN_REASON) -> int:
    """End every open stream now (from any thread): each is recorded as interrupted and
    its client gets an error event. Returns how many there were."""
    state = getattr(app, "state", None)
    streams = list(getattr(state, "streams", ()))
    for sink in streams:
        sink.cancel(reason)
    return len(streams)
