"""What one ledger row holds. The engine builds these; the ledger stores them.
(Declared with the tables in ledger/schema.py; this name is kept for importers.)"""

from __future__ import annotations

from typing import NamedTuple

from cascadeflow_cli.ledger.schema import CallRecord, CallSignals, RequestRecord


class LaterCall(NamedTuple):
    """A call added to a request after the request was recorded (a shadow verification,
    engine/shadow.py), as the ``on_record`` hooks hear of it: what telemetry needs to send
    the call's span on its own, under the request's span (telemetry/spans.py)."""

    request_id: str
    user: str
    query: str | None
    call: CallRecord
    start_ns: int  # when the call started (time.time_ns()); its latency gives the end


__all__ = ["CallRecord", "CallSignals", "LaterCall", "RequestRecord"]
