"""What one ledger row holds. The engine builds these; the ledger stores them.
(Declared with the tables in ledger/schema.py; this name is kept for importers.)"""

from __future__ import annotations

from cascadeflow_cli.ledger.schema import CallRecord, CallSignals, RequestRecord

__all__ = ["CallRecord", "CallSignals", "RequestRecord"]
