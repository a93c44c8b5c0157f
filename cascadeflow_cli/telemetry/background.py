"""The sink, started in a background thread. Importing the SDK and its OTLP exporter
(requests, protobuf) is most of what telemetry costs a short command; started when the
command starts, it overlaps the model call's wait instead of adding to it. Requests that
finish before the SDK is ready wait in a bounded list. Imports nothing of OpenTelemetry
itself, so the caller stays light."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from cascadeflow_cli.errors import MissingExtraError
from cascadeflow_cli.ledger.records import RequestRecord
from cascadeflow_cli.telemetry.settings import TelemetrySettings

if TYPE_CHECKING:
    from cascadeflow_cli.telemetry.sink import TelemetrySink

MAX_PENDING = 2_000  # requests held while the SDK starts; beyond that they are counted, not kept


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
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._sink: TelemetrySink | None = None
        self._pending: list[RequestRecord] | None = []
        self._overflow = 0
        self.problem: str | None = None  # why telemetry could not start
        self.start_s = 0.0  # how long the SDK took to start
        _share_imports()
        threading.Thread(target=self._start, name="otel-start", daemon=True).start()

    def _start(self) -> None:
        from cascadeflow_cli.telemetry import open_sink

        sink: TelemetrySink | None = None
        started = time.monotonic()
        try:
            sink = open_sink(self.settings)
        except MissingExtraError as exc:
            self.problem = str(exc)
        except Exception as exc:  # telemetry must never take the command down
            self.problem = f"telemetry could not start: {type(exc).__name__}: {exc}"
        self.start_s = time.monotonic() - started
        while True:  # hand over what arrived meanwhile, then let record() go straight through
            with self._lock:
                pending, self._pending = self._pending or [], [] if sink is not None else None
                if not pending:
                    self._sink, self._pending = sink, None
                    break
            if sink is not None:
                for record in pending:
                    sink.record(record)
        self._ready.set()

    def record(self, record: RequestRecord) -> None:
        """Never raises, never waits for the SDK."""
        with self._lock:
            if self._pending is not None:
                if len(self._pending) < MAX_PENDING:
                    self._pending.append(record)
                else:
                    self._overflow += 1
                return
            sink = self._sink
        if sink is not None:
            sink.record(record)

    def finish(self) -> str | None:
        """The bounded flush; the warning line for stderr, or None when all arrived.
        The SDK's start-up counts against flush_timeout (it is time telemetry added too),
        so a dead or hung collector costs a command at most that in all; a tenth of it
        is always left for the export itself."""
        budget = self.settings.flush_timeout
        if not self._ready.wait(budget):
            return "telemetry: gave up waiting for OpenTelemetry to start; nothing was sent"
        if self._sink is None:
            return self.problem
        report = self._sink.flush(max(budget - self.start_s, budget / 10))
        line = report.warning()
        if self._overflow:
            extra = f"{self._overflow:,} requests dropped while OpenTelemetry started"
            line = f"{line}; {extra}" if line else f"telemetry: {extra}"
        return line
