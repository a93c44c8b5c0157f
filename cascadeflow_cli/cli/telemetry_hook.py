"""Telemetry for the commands that run requests: build the sink when telemetry is on,
hand it each finished ledger record, flush within the bounded time when the command
ends, and say in one stderr line what did not arrive. Telemetry never changes an answer
or an exit code; only a bad endpoint (a config error) stops a command, before it runs."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from cascadeflow_cli.errors import MissingExtraError

if TYPE_CHECKING:
    from cascadeflow_cli.cli.context import AppContext
    from cascadeflow_cli.ledger.records import RequestRecord
    from cascadeflow_cli.telemetry.sink import TelemetrySink

OnRecord = Callable[["RequestRecord"], None]


def warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")
    sys.stderr.flush()


def telemetry(ctx: AppContext) -> OnRecord | None:
    """The callback that sends each finished request, or None when telemetry is off (or
    its extra is missing: then one warning line, and the command runs without it). The
    flush is registered to run when the command ends, whether it succeeded or not."""
    from cascadeflow_cli.telemetry import is_requested

    if not is_requested(ctx.config.telemetry):
        return None
    from cascadeflow_cli.telemetry import open_sink, resolve

    settings = resolve(ctx.config.telemetry)  # a bad endpoint: ConfigError, exit 1, nothing ran
    assert settings is not None
    try:
        sink = open_sink(settings)
    except MissingExtraError as exc:
        warn(str(exc))
        return None
    ctx.on_close.append(lambda: finish(sink))
    return sink.record


def finish(sink: TelemetrySink) -> None:
    """The bounded flush at exit, and one warning line if anything did not arrive."""
    with contextlib.suppress(BrokenPipeError, ValueError):
        sys.stdout.flush()  # the answer reaches a pipe before we wait on the collector
    line = sink.close().warning()
    if line:
        warn(line)
