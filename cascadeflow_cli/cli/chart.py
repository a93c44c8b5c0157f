"""A terminal chart of recent daily spend and the forecast with its band, in plain
unicode (one column per day, or per few days when they do not fit). Pure: returns lines
of text; the CLI colours them by character (``HISTORY``, ``BAND``, ``MEAN``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from typing import Protocol

HISTORY = "█"
BAND = "░"
MEAN = "●"
_EIGHTHS = " ▁▂▃▄▅▆▇█"


class ForecastDay(Protocol):
    """What the chart needs of a forecast day (``DailyForecast`` has it)."""

    date: date
    mean: float
    lower: float
    upper: float


def forecast_chart(history: Sequence[tuple[date, float]], daily: Sequence[ForecastDay], *,
                   width: int = 72, height: int = 8, history_days: int = 56) -> list[str]:
    """Bars for the last ``history_days`` of history, then for each forecast day its band
    (lower to upper) with the mean marked. ``daily`` holds objects with ``date``,
    ``mean``, ``lower`` and ``upper``. Returns ``height`` rows plus an axis line."""
    past = [(d, _clean(v)) for d, v in list(history)[-history_days:]]
    future = [(f.date, _clean(f.mean), _clean(f.lower), _clean(f.upper)) for f in daily]
    columns = len(past) + len(future)
    if columns == 0:
        return []
    label_width = 9
    per_column = max(1, math.ceil(columns / max(8, width - label_width - 2)))
    hist_cols = [_mean([v for _, v in past[i:i + per_column]]) for i in range(0, len(past), per_column)]
    fut_cols = [tuple(_mean([row[k] for row in future[i:i + per_column]]) for k in (1, 2, 3))
                for i in range(0, len(future), per_column)]
    top = max([*hist_cols, *(c[2] for c in fut_cols), 0.0])
    if top <= 0:
        top = 1.0
    rows: list[str] = []
    for r in range(height, 0, -1):
        lo_edge, hi_edge = (r - 1) / height * top, r / height * top
        cells = [_bar_cell(v, lo_edge, hi_edge) for v in hist_cols]
        cells.append("│")
        cells.extend(_band_cell(mean, lower, upper, lo_edge, hi_edge) for mean, lower, upper in fut_cols)
        label = _money(hi_edge) if r in (height, (height + 1) // 2) else ""
        rows.append(f"{label:>{label_width}} " + "".join(cells))
    first = past[0][0] if past else future[0][0]
    split = future[0][0] if future else None
    last = future[-1][0] if future else past[-1][0]
    axis = f"{'':>{label_width}} {first.isoformat()}"
    if split is not None:
        pad = max(1, len(hist_cols) - len(first.isoformat()))
        axis += " " * pad + f"│{split.isoformat()}"
        tail = max(1, len(fut_cols) - len(split.isoformat()) - len(last.isoformat()) - 1)
        if len(fut_cols) > len(split.isoformat()) + len(last.isoformat()) + 2:
            axis += " " * tail + last.isoformat()
    rows.append(axis)
    return rows


def _clean(value: float) -> float:
    return value if math.isfinite(value) and value > 0 else 0.0


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _bar_cell(value: float, lo: float, hi: float) -> str:
    if value >= hi:
        return HISTORY
    if value <= lo:
        return " "
    return _EIGHTHS[max(1, round((value - lo) / (hi - lo) * 8))]


def _band_cell(mean: float, lower: float, upper: float, lo: float, hi: float) -> str:
    if lo <= mean < hi or (mean == hi and hi > 0 and mean == upper):
        return MEAN
    if upper > lo and lower < hi:
        return BAND
    return " "


def _money(value: float) -> str:
    if value >= 1000:
        return f"${value / 1000:.1f}k"
    if value >= 10:
        return f"${value:.0f}"
    return f"${value:.2f}"
