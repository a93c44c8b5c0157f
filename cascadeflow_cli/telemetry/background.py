"""The sink on its own thread (telemetry/stream.py over OTLP/HTTP, the SDK over gRPC).
Building and encoding spans and metric points costs a few hundred microseconds of CPU a
request, and the SDK's import (gRPC) much more: started when the command starts, the
import overlaps the model call's wait, and `cascade batch`'s workers only hand their
records over (a bounded queue: memory stays flat, and what a full queue
turns away is counted and reported). Imports nothing of OpenTelemetry itself."""

from __future__ import annotations

import queue
import threading
import time
from typing import TYPE_CHECKING

from cascadeflow_cli.errors import MissingExtraError
from cascadeflow_cli.ledger.records import RequestRecord
from cascadeflow_cli.telemetry.context import Parent
from cascadeflow_cli.telemetry.settings import TelemetrySettings

if TYPE_CHECKING:
    from cascadeflow_cli.telemetry.sink import TelemetrySink
    from cascadeflow_cli.telemetry.stream import StreamSink

MAX_PENDING = 2_000  # requests waiting for the telemetry thread; beyond that, counted and dropped
_STOP = object()


def _share_imports() -> None:
    """Import here, in the command's thread, the standard modules both the SDK's exporter
    and our model providers load (HTTP, TLS, e-mail headers): two threads importing the
    same package tree at once is where concurrent imports can deadlock."""
    import email.message  # noqa: F401
    import http.client  # noqa: F401
    import ssl  # noqa: F401


class BackgroundSink:
    def __init__(self, settings: TelemetrySettings) -> None:
        self.settings = settings
        self._queue: queue.Queue[object] = queue.Queue(MAX_PENDING)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._sink: TelemetrySink | StreamSink | None = None
        self._overflow = 0
        self.problem: str | None = None  # why telemetry could not start
        self.start_s = 0.0  # how long the SDK took to start
        _share_imports()
        threading.Thread(target=self._run, name="otel", daemon=True).start()

    def _run(self) -> None:
        from cascadeflow_cli.telemetry import open_sink

        started = time.monotonic()
        try:
            if self.settings.protocol == "http/protobuf":  # no SDK needed (telemetry/stream.py)
                from cascadeflow_cli.telemetry.stream import StreamSink

                self._sink = StreamSink(self.settings)
            else:
                self._sink = open_sink(self.settings)
        except MissingExtraError as exc:
            self.problem = str(exc)
        except Exception as exc:  # telemetry must never take the command down
            self.problem = f"telemetry could not start: {type(exc).__name__}: {exc}"
        self.start_s = time.monotonic() - started
        while (item := self._queue.get()) is not _STOP:
            if self._sink is not None:
                self._sink.record(*item)  # type: ignore[misc]
        self._done.set()

    def record(self, record: RequestRecord, parent: Parent | None = None) -> None:
        """Never raises, never waits. ``parent``: the caller's span (telemetry/context.py)."""
        try:
            self._queue.put_nowait((record, parent))
        except queue.Full:
            with self._lock:
                self._overflow += 1

    def finish(self) -> str | None:
        """The bounded flush; the warning line for stderr, or None when all arrived.
        The SDK's start-up and any backlog count against flush_timeout (they are time
        telemetry added too), so a dead or hung collector costs a command at most that
        in all; a tenth of it is always left for the export itself."""
        budget = self.settings.flush_timeout
        began = time.monotonic()
        try:
            self._queue.put(_STOP, timeout=budget)
        except queue.Full:
            return "telemetry: gave up waiting for the spans to be built; nothing more was sent"
        if not self._done.wait(max(0.0, budget - (time.monotonic() - began))):
            return "telemetry: gave up waiting for OpenTelemetry to start; nothing was sent"
        if self._sink is None:
            return self.problem
        spent = max(self.start_s, time.monotonic() - began)
        line = self._sink.flush(max(budget - spent, budget / 10)).warning()
        if self._overflow:
            extra = f"{self._overflow:,} requests not sent (the telemetry queue was full)"
            line = f"{line}; {extra}" if line else f"telemetry: {extra}"
        return line
