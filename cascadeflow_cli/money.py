"""Exact money. Amounts are integer nano-dollars (1e-9 USD) everywhere they are stored
or compared, so sums over a million ledger rows never drift; floats appear only at the
edges (JSON output, rendering)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

NANOS_PER_USD = 10**9
_PER_MILLION = Decimal(10**6)


def nanos_from_usd(amount: Decimal | float | str | int) -> int:
    """Round a USD amount to whole nano-dollars (banker's rounding)."""
    value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    return int((value * NANOS_PER_USD).to_integral_value(rounding=ROUND_HALF_EVEN))


def usd(nanos: int) -> float:
    """Nano-dollars as a float in USD, for JSON and display only."""
    return nanos / NANOS_PER_USD


def token_cost_nanos(tokens: int, usd_per_million: Decimal) -> Decimal:
    """Cost of ``tokens`` at a per-million price, in (fractional) nano-dollars."""
    return Decimal(tokens) * usd_per_million * NANOS_PER_USD / _PER_MILLION


def format_usd(nanos: int) -> str:
    """A human amount: enough digits to see sub-cent costs, no float noise."""
    value = Decimal(abs(nanos)) / NANOS_PER_USD
    sign = "-" if nanos < 0 else ""
    if value != 0 and value < Decimal("0.01"):
        return f"{sign}${value:.6f}"
    return f"{sign}${value:,.4f}"
