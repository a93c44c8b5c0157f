"""`cascade serve`: an OpenAI-compatible chat-completions endpoint over the cascade, the
budgets and the ledger (the ``[serve]`` extra: uvicorn and Starlette). This package root
imports neither; ``build_app`` and ``serve`` do, when the command runs."""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.errors import InputError, MissingExtraError

if TYPE_CHECKING:
    from starlette.applications import Starlette

EXTRA_HINT = "install the [serve] extra: pip install 'cascadeflow-cli[serve]'"
_ENV = "CASCADE_SERVE_SETTINGS"  # how `--workers N` hands the settings to each worker process


@dataclass(frozen=True)
class ServeSettings:
    config_path: str | None
    db_path: str | None  # the ledger's location: a file path or a postgresql:// URL
    host: str = "127.0.0.1"
    port: int = 8765
    workers: int = 1
    concurrency: int = 64
    queue: int = 1024
    grace_s: float = 30.0  # SIGTERM: in-flight requests get this long to finish
    access_log: bool = True
    max_body: int = 4 * 1024 * 1024


def check_extra() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise MissingExtraError(f"`cascade serve` needs uvicorn and starlette: {EXTRA_HINT}") from None


def build_app(settings: ServeSettings, write_log: Callable[[str], None] | None = None) -> Starlette:
    """The app with its ledger, thread pool and telemetry; they close when it shuts down."""
    import asyncio
    import contextlib

    from cascadeflow_cli.config import load_config, resolve_ledger_location
    from cascadeflow_cli.ledger.backend import open_store
    from cascadeflow_cli.ledger.db import Ledger
    from cascadeflow_cli.ledger.group_commit import GroupCommitLedger
    from cascadeflow_cli.server.app import ServeOptions, create_app
    from cascadeflow_cli.server.http import stderr_log
    from cascadeflow_cli.server.runner import Runner

    config = load_config(Path(settings.config_path) if settings.config_path else None)
    store = open_store(resolve_ledger_location(settings.db_path, config))  # a file or postgresql://
    # on SQLite every request's reservation and record go through one writer thread (group
    # commit); PostgreSQL's per-user locks let different users' checks run side by side already
    ledger: Any = store
    bridge = None
    if isinstance(store, Ledger):
        # a request's whole answer runs in its own task, when greenlet is there (server/bridge.py)
        bridge = _bridge()
        ledger = GroupCommitLedger(store, bridge.LoopAwaiter() if bridge else None)
    sink, on_record = _telemetry(config)
    runner = Runner(
        config, ledger, concurrency=settings.concurrency, on_record=on_record, bridged=bridge is not None,
    )
    log = (write_log or stderr_log) if settings.access_log else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        if settings.workers > 1:  # a worker process of `--workers N`: its own SIGTERM handling
            _watch_stop(app, settings.grace_s)
        yield
        await asyncio.to_thread(_close, runner, ledger, sink)

    options = ServeOptions(settings.concurrency, settings.queue, settings.max_body, log)
    return create_app(config, runner, options, lifespan=lifespan)


def _bridge() -> Any:
    """server/bridge.py, or None without greenlet (requests then run on pool threads)."""
    try:
        from cascadeflow_cli.server import bridge
    except ImportError:
        return None
    return bridge


def _telemetry(config: Any) -> tuple[Any, Callable[[Any], None] | None]:
    from cascadeflow_cli.telemetry import is_requested, resolve

    if not is_requested(config.telemetry):
        return None, None
    from cascadeflow_cli.telemetry.background import BackgroundSink

    sink = BackgroundSink(resolve(config.telemetry))  # type: ignore[arg-type]
    return sink, sink.record


def _close(runner: Any, ledger: Any, sink: Any) -> None:
    """After the last request: the pool's threads finish recording, telemetry flushes,
    the settled write-ahead logs go (a worker process never runs its atexit handlers)."""
    from cascadeflow_cli.ledger.ahead_log import drop_settled_logs

    runner.close()
    if sink is not None:
        line = sink.finish()
        if line:
            sys.stderr.write(f"warning: {line}\n")
    ledger.close()
    drop_settled_logs()


def _on_stop(app: Any, grace_s: float) -> None:
    """A stop was asked: new streams see it, and those still open after ``grace_s`` are
    cut (recorded as interrupted)."""
    import threading

    from cascadeflow_cli.server.app import cut_streams

    if app.state.stopping:
        return
    app.state.stopping = True
    timer = threading.Timer(grace_s, cut_streams, args=(app,))
    timer.daemon = True
    timer.start()


def _watch_stop(app: Any, grace_s: float) -> None:
    """In a worker process (uvicorn has installed its handlers by the lifespan's start):
    SIGTERM and SIGINT start the grace period, then go on to uvicorn's own handler, as
    ``serve`` arranges for a single process."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)

        def handler(number: int, frame: Any, previous: Any = previous) -> None:
            _on_stop(app, grace_s)
            if callable(previous):
                previous(number, frame)

        signal.signal(sig, handler)


STARTUP_FAILURE = 3  # uvicorn's exit code for "this worker failed to start": its supervisor then stops


def factory() -> Starlette:
    """The app of one worker process of `cascade serve --workers N`. One that cannot be
    built says why in one line and exits STARTUP_FAILURE: a traceback per worker, started
    again forever, was the alternative."""
    from cascadeflow_cli.errors import CascadeError
    from cascadeflow_cli.redact import redact

    try:
        return build_app(ServeSettings(**json.loads(os.environ[_ENV])))
    except CascadeError as exc:
        sys.stderr.write(f"error: {' '.join(redact(str(exc)).split())}\n")
        sys.stderr.flush()
        raise SystemExit(STARTUP_FAILURE) from None


def preflight(settings: ServeSettings) -> None:
    """In the parent, what each worker's ``build_app`` would refuse besides the ledger
    (which the command has opened): the config and the telemetry settings, so a bad one is
    the usual one line before "listening on", not a failure in every worker."""
    from importlib.util import find_spec

    from cascadeflow_cli.config import load_config
    from cascadeflow_cli.telemetry import EXTRA_HINT, is_requested, resolve

    config = load_config(Path(settings.config_path) if settings.config_path else None)
    on = is_requested(config.telemetry) and resolve(config.telemetry) is not None
    if on and (find_spec("opentelemetry") is None or find_spec("opentelemetry.sdk") is None):
        raise MissingExtraError(f"telemetry is on but OpenTelemetry is not installed: {EXTRA_HINT}")


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)  # connections queue from now on, before the server loop runs
    sock.set_inheritable(True)
    return sock


def serve(settings: ServeSettings, on_listening: Callable[[str], None] | None = None) -> None:
    """Run until SIGTERM or Ctrl-C: then stop accepting, let in-flight requests finish
    for ``grace_s`` (streams still open after it are cut, and recorded as interrupted),
    wait for their ledger writes, flush telemetry."""
    check_extra()
    import uvicorn

    from cascadeflow_cli.server.protocol import OpenAIErrorsProtocol

    sock = bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    kwargs: dict[str, Any] = dict(
        log_level="warning",
        access_log=False,  # ours is one line per request, without the query string's secrets
        timeout_graceful_shutdown=settings.grace_s + 10,  # a backstop: streams are cut at grace_s
        timeout_keep_alive=5,
        backlog=2048,
        server_header=False,
        proxy_headers=False,  # one ASGI layer less a request; nothing here reads the client address
        http=OpenAIErrorsProtocol,  # a request it cannot parse gets OpenAI's error shape too
    )
    if settings.workers > 1:
        preflight(settings)
        _run_workers(settings, kwargs, host, port, on_listening, sock)
        return
    import signal

    app = build_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, **kwargs))
    original = server.handle_exit

    def handle_exit(sig: int, frame: Any) -> None:
        _on_stop(app, settings.grace_s)
        original(sig, frame)

    server.handle_exit = handle_exit  # type: ignore[method-assign]
    # uvicorn re-raises the signal it stopped on once it is done; by then the stop was
    # graceful, so the command's own handler (which would exit 130) must not see it
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    if on_listening:
        on_listening(f"http://{host}:{port}/v1")
    server.run(sockets=[sock])


def _run_workers(
    settings: ServeSettings, kwargs: dict[str, Any], host: str, port: int,
    on_listening: Callable[[str], None] | None, sock: socket.socket,
) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    os.environ[_ENV] = json.dumps(asdict(settings))
    config = uvicorn.Config(
        "cascadeflow_cli.server:factory", factory=True, workers=settings.workers, **kwargs
    )
    server = uvicorn.Server(config)
    if on_listening:
        on_listening(f"http://{host}:{port}/v1")
    try:  # uvicorn >= 0.52 runs its own target
        supervisor = Multiprocess(config, sockets=[sock])  # type: ignore[call-arg]
    except TypeError:
        supervisor = Multiprocess(config, target=server.run, sockets=[sock])  # type: ignore[call-arg]
    supervisor.run()
    if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
        raise SystemExit(1)  # the worker said why, in one line
