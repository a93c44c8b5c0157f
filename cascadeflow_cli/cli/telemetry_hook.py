"""Telemetry for the commands that run requests: build the sink when telemetry is on,
hand it each finished ledger record, flush within the bounded time when the command
ends, and say in one stderr line what did not arrive. Telemetry never changes an answer
or an exit code; only a bad endpoint (a config error) stops a command, before it runs."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cascadeflow_cli.cli.context import AppContext
    from cascadeflow_cli.ledger.records import LaterCall, RequestRecord
    from cascadeflow_cli.telemetry.background import BackgroundSink
    from cascadeflow_cli.telemetry.direct import DirectSink

OnRecord = Callable[["RequestRecord | LaterCall"], None]  # a request, or a shadow call after it


def warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")
    sys.stderr.flush()


def telemetry(ctx: AppContext, *, one_shot: bool = False) -> OnRecord | None:
    """The callback that sends each finished request, or None when telemetry is off.
    Over OTLP/HTTP nothing of the SDK is used: ``one_shot`` (`ask`: one request, then
    exit) posts at the end (telemetry/direct.py), else a telemetry thread encodes and
    posts as requests finish (telemetry/stream.py). Over gRPC the SDK starts in the
    background (a missing package is one warning line at the end, and the command runs
    without it). The bounded flush is registered to run when the command ends, whether
    it succeeded or not."""
    from cascadeflow_cli.telemetry import is_requested

    if not is_requested(ctx.config.telemetry):
        return None
    from cascadeflow_cli.telemetry import resolve

    settings = resolve(ctx.config.telemetry)  # a bad endpoint: ConfigError, exit 1, nothing ran
    assert settings is not None
    sink: BackgroundSink | DirectSink
    if one_shot and settings.protocol == "http/protobuf":
        from cascadeflow_cli.telemetry.direct import DirectSink

        sink = DirectSink(settings)
    else:
        from cascadeflow_cli.telemetry.background import BackgroundSink

        sink = BackgroundSink(settings)
    ctx.on_close.append(lambda: finish(sink))
    return sink.record


def finish(sink: BackgroundSink | DirectSink) -> None:
    """The bounded flush at exit, and one warning line if anything did not arrive."""
    with contextlib.suppress(BrokenPipeError, ValueError):
        sys.stdout.flush()  # the answer reaches a pipe before we wait on the collector
    line = sink.finish()
    if line:
        warn(line)
