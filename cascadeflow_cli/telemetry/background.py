"""The sink on its own thread (telemetry/stream.py over OTLP/HTTP, the SDK over gRPC).
Building and encoding spans and metric points costs a few hundred microseconds of CPU a
request, and the SDK's import (gRPC) much more: started when the command starts, the
import overlaps the model call's wait, and `cascade batch`'s workers only hand their
records over (a bounded queue: memory stays flat, and what a full queue
turns away is counted and reported). Imports nothing of OpenTelemetry itself."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from cascadeflow_cli.errors import MissingExtraError
from cascadeflow_cli.ledger.records import LaterCall, RequestRecord
from cascadeflow_cli.telemetry.context import Parent
from cascadeflow_cli.telemetry.settings import TelemetrySettings

if TYPE_CHECKING:
    from cascadeflow_cli.telemetry.sink import TelemetrySink
    from cascadeflow_cli.telemetry.stream import StreamSink

MAX_PENDING = 2_000  # requests waiting for the telemetry thread; beyond that, counted and dropped
# The thread takes what waits every DRAIN_S, not each record as it comes: woken 3,000 times
# in a 3,000-row batch it was one more thread in the queue for the GIL on every row.
DRAIN_S = 0.05


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
        self._pending: deque[tuple[RequestRecord | LaterCall, Parent | None]] = deque()
        self._max_pending = MAX_PENDING
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._started = False  # the sink is built (or could not be)
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
        self._started = True
        while True:
            stopping = self._stop.wait(DRAIN_S)
            while self._pending:
                item = self._pending.popleft()  # deque: safe against the appending threads
                if self._sink is not None:
                    self._sink.record(*item)
            if stopping:
                break
        self._done.set()

    def record(self, record: RequestRecord | LaterCall, parent: Parent | None = None) -> None:
        """Never raises, never waits. ``parent``: the caller's span (telemetry/context.py)."""
        if len(self._pending) >= self._max_pending:
            with self._lock:
                self._overflow += 1
            return
        self._pending.append((record, parent))

    def finish(self) -> str | None:
        """The bounded flush; the warning line for stderr, or None when all arrived.
        The SDK's start-up and any backlog count against flush_timeout (they are time
        telemetry added too), so a dead or hung collector costs a command at most that
        in all; a tenth of it is always left for the export itself."""
        budget = self.settings.flush_timeout
        began = time.monotonic()
        self._stop.set()
        if not self._done.wait(budget):
            if self._started:
                return "telemetry: gave up waiting for the spans to be built; nothing more was sent"
            return "telemetry: gave up waiting for OpenTelemetry to start; nothing was sent"
        if self._sink is None:
            return self.problem
        spent = max(self.start_s, time.monotonic() - began)
        line = self._sink.flush(max(budget - spent, budget / 10)).warning()
        if self._overflow:
            extra = f"{self._overflow:,} requests not sent (the telemetry queue was full)"
            line = f"{line}; {extra}" if line else f"telemetry: {extra}"
        return line
