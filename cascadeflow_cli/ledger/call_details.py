"""Migration 004: the call details OpenTelemetry's GenAI spans carry (the provider's
response id and model, the max_tokens asked for, the error's class), kept in the ledger
so `cascade export --otlp` can send history with the same attributes as a live run."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils


def migrate_call_details(db: sqlite_utils.Database) -> None:
    calls = db["calls"]
    calls.add_column("response_id", str)
    calls.add_column("response_model", str)
    calls.add_column("max_tokens", int)
    calls.add_column("error_type", str)
