"""Counted nouns for human output: "1 day", "2 days", never "1 days" or "1 day(s)"."""

from __future__ import annotations

_IRREGULAR = {"query": "queries", "anomaly": "anomalies", "entry": "entries"}


def count_of(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun in the number it needs, with thousands separators."""
    word = noun if n == 1 else plural or _IRREGULAR.get(noun) or f"{noun}s"
    return f"{n:,} {word}"
