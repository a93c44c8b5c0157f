"""What a flush delivered, and the one stderr line when something did not arrive; shared
by the SDK's sink and the one-shot exporter (no OpenTelemetry import)."""

from __future__ import annotations

from typing import NamedTuple


class FlushReport(NamedTuple):
    spans: int  # spans this process made
    delivered: int  # spans the collector accepted
    dropped: int  # spans a full queue dropped before they could be sent
    metric_failures: int
    timed_out: bool
    error: str | None
    endpoint: str

    @property
    def ok(self) -> bool:
        return self.delivered >= self.spans and not self.metric_failures and not self.timed_out

    def warning(self) -> str | None:
        """One line for stderr when anything did not arrive, else None."""
        if self.ok:
            return None
        lost = self.spans - self.delivered
        parts = [f"{lost:,} of {self.spans:,} spans not delivered to {self.endpoint}"]
        if self.dropped:
            parts.append(f"{self.dropped:,} dropped from a full queue")
        if self.metric_failures and not lost:
            parts = [f"metrics not delivered to {self.endpoint}"]
        if self.timed_out:
            parts.append("gave up waiting for the collector")
        if self.error:
            parts.append(self.error)
        return "telemetry: " + "; ".join(parts)
