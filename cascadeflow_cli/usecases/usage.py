"""`cascade usage`: spend, tokens, requests, draft acceptance and savings, by group."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cascadeflow_cli.ledger.db import Ledger
    from cascadeflow_cli.ledger.export import LedgerFilter
    from cascadeflow_cli.ledger.usage import UsageReport


def usage_report(ledger: Ledger, flt: LedgerFilter, grouping: str | None, timezone: str) -> UsageReport:
    """Totals over the filtered requests and, with ``grouping`` (user, model, provider,
    domain or day), one row per group; days are local days in ``timezone``."""
    return ledger.usage(flt, grouping, timezone)
