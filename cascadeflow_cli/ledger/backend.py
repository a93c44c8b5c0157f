"""Open the ledger a location names: a SQLite file (the default) or a PostgreSQL database.
The PostgreSQL backend (and psycopg) is imported only for a ``postgresql://`` location."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cascadeflow_cli.dburl import LedgerLocation, parse_location

if TYPE_CHECKING:
    from cascadeflow_cli.clock import Clock
    from cascadeflow_cli.ledger.storage import LedgerStore


def open_store(location: LedgerLocation | str | Path, clock: Clock | None = None, *,
               read_only: bool = False) -> LedgerStore:
    """The ledger at ``location`` (a LedgerLocation, a path, or a path/URL text), created
    and migrated if new. A server that is down or refuses us raises LedgerUnavailableError.
    ``read_only``: the caller only reads, so a SQLite file it may not write is opened
    read-only rather than refused (PostgreSQL's permissions are the server's)."""
    if not isinstance(location, LedgerLocation):
        location = parse_location(location)
    if location.is_postgres:
        from cascadeflow_cli.ledger.postgres.store import PostgresLedger

        return PostgresLedger(location, clock)  # type: ignore[return-value]
    from cascadeflow_cli.ledger.db import open_ledger

    assert location.path is not None
    return open_ledger(location.path, clock, read_only=read_only)  # type: ignore[return-value]
