"""Exact money. Amounts are integer nano-dollars (1e-9 USD) everywhere they are stored
or compared, so sums over a million ledger rows never drift; floats appear only at the
edges (JSON output, rendering)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

NANOS_PER_USD = 10**9
_PER_MILLION = Decimal(10**6)

# The largest amount one value may hold: a request's or call's cost, a budget limit, a
# price per million tokens. In nano-dollars it is 1e18, below SQLite's int64 ceiling
# (9.2e18), so one value always fits a column; sums are kept exact past that by
# ``ledger/sql.py``'s ``money_sum_sql``. A billion dollars is no real request: a bigger figure is a typo.
MAX_AMOUNT_USD = Decimal(10**9)
NANO_USD = Decimal(1) / NANOS_PER_USD  # the smallest amount the ledger counts
MAX_COUNT = 10**12  # the largest token count (or other count) one imported row may hold


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
    """A human amount from nano-dollars; see ``format_dollars``."""
    return format_dollars(Decimal(nanos) / NANOS_PER_USD)


def format_dollars(amount: Decimal | float | int) -> str:
    """The one way amounts are shown to people: never scientific notation, no float noise.

    From $1 up, cents with thousands separators (``$1,000,000,000.00``); below $1, three
    significant digits and at least two decimals, trailing zeros dropped (``$0.50``,
    ``$0.0417``, ``$0.0000505``, ``$0.0000000001``); zero is ``$0.00``.
    """
    value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    if not value.is_finite():
        return f"${value}"
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value >= 1 or value == 0:
        return f"{sign}${value.quantize(_CENT, rounding=ROUND_HALF_EVEN):,.2f}"
    exponent = value.adjusted()  # 0.0417 -> -2: three significant digits end at 10**(exponent-2)
    text = f"{value.quantize(Decimal(1).scaleb(exponent - 2), rounding=ROUND_HALF_EVEN):f}"
    if Decimal(text) >= 1:  # 0.9996 rounds up to a dollar
        return f"{sign}$1.00"
    whole, _, decimals = text.partition(".")
    decimals = decimals.rstrip("0").ljust(2, "0")
    return f"{sign}${whole}.{decimals}"


_CENT = Decimal("0.01")


def amount_problem(amount: Decimal, *, allow_zero: bool = True, allow_tiny: bool = False) -> str | None:
    """Why ``amount`` (USD) cannot be stored, or None: negative, not finite, above
    MAX_AMOUNT_USD, or (unless ``allow_tiny``: prices are per million tokens) so small
    that it would round to $0: a limit meant as "almost nothing" must not silently
    become "nothing"."""
    if not amount.is_finite():
        return "is not a finite amount"
    if amount < 0:
        return "must not be negative"
    if amount > MAX_AMOUNT_USD:
        return f"is above the maximum of ${MAX_AMOUNT_USD:,} per value"
    if amount == 0:
        return None if allow_zero else "must be more than $0"
    if nanos_from_usd(amount) == 0 and not allow_tiny:
        return f"is below ${NANO_USD:f}, the smallest amount the ledger counts (use 0 for nothing)"
    return None


def nanos(value: int | float | None) -> int:
    """A nano-dollar figure read from SQL (None for no rows, a float past int64) as int."""
    if value is None:
        return 0
    return value if isinstance(value, int) else int(Decimal(value))
