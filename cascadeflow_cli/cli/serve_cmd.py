"""`cascade serve`: the OpenAI-compatible endpoint (the [serve] extra)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cascadeflow_cli.cli.context import app_context

# --workers 99999999999999999999 forked workers until the machine stalled (over a thousand
# processes on a 2-core host); each is a process with its own ledger connection
MAX_WORKERS = 64
# --grace 1e300 was an OverflowError traceback (a time_t) at the SIGTERM it was meant for
MAX_GRACE_S = 86_400.0


def _check_host(value: str) -> str:
    """An empty --host listened on every interface (0.0.0.0), not on none: say so."""
    if not value.strip():
        raise typer.BadParameter("the address is empty (give 127.0.0.1, or 0.0.0.0 for every interface)")
    return value


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", callback=_check_host,
                                      help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0 picks a free one).")] = 8765,
    workers: Annotated[int, typer.Option("--workers", min=1, max=MAX_WORKERS, help="Worker processes.")] = 1,
    concurrency: Annotated[
        int, typer.Option("--max-concurrency", min=1, help="Requests in the cascade at once, per process.")
    ] = 64,
    grace: Annotated[
        float, typer.Option("--grace", min=0, max=MAX_GRACE_S,
                            help="Seconds in-flight requests get to finish on SIGTERM.")
    ] = 30.0,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="One line per request on stderr.")
    ] = True,
) -> None:
    """Serve OpenAI's chat-completions API: every request through the cascade, the
    caller's budget and the ledger. Authorization: Bearer <key> (`cascade key create`)."""
    from cascadeflow_cli.server import ServeSettings, check_extra, serve

    check_extra()  # one line naming the extra, before anything is opened
    context = app_context(ctx)
    context.ledger()  # a bad config or ledger fails here, with the usual one line, before listening
    location = context.resolved_location
    settings = ServeSettings(
        config_path=str(context.config.source) if context.config.source else None,
        db_path=location.url or str(location.path),  # a URL as given: each worker resolves its password
        host=host,
        port=port,
        workers=workers,
        concurrency=concurrency,
        grace_s=grace,
        access_log=access_log,
    )
    context.close()  # the server opens its own ledger (one per worker process)

    def listening(url: str) -> None:
        sys.stderr.write(f"listening on {url}\n")
        sys.stderr.flush()

    serve(settings, on_listening=listening)
