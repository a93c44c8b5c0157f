"""SQLite expression helpers the ledger's queries share (money kept exact in SQL)."""

from __future__ import annotations


def money_sum_sql(column: str) -> str:
    """SQL for an exact, overflow-safe sum of an integer nano-dollar column.

    SQLite's ``sum()`` raises "integer overflow" past 9.2e18 nano-dollars ($9.2 billion);
    ``total()`` never overflows but is a float, inexact past 2**53 nano-dollars ($9M).
    So whole dollars and the nano-dollar remainders are summed apart (neither can
    overflow below ~9e9 rows of MAX_AMOUNT_USD) and recombined: exact while the result
    fits an int64, and a float (SQLite's integer arithmetic overflows into REAL, never an
    error) beyond it. ``nanos()`` turns the result back into a Python int.
    """
    return (f"(coalesce(sum(({column}) / 1000000000), 0) * 1000000000 "
            f"+ coalesce(sum(({column}) % 1000000000), 0))")


def money_sql(column: str) -> str:
    """Nano-dollars as an exact USD decimal string with 9 places ("0.000123450");
    NULL stays NULL (neither branch matches)."""
    return (f"CASE WHEN {column} >= 0 THEN printf('%d.%09d', {column} / 1000000000, "
            f"{column} % 1000000000) WHEN {column} < 0 THEN printf('-%d.%09d', "
            f"-{column} / 1000000000, -{column} % 1000000000) END")
