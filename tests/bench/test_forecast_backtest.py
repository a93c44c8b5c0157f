"""bench/forecast_backtest.py's held-out short set: 69-day windows (as the ad-exchange
series) of a synthetic draw the other sets of the same run do not use, so a change to the
short-history path is judged on more than six real series."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

BENCH = Path(__file__).resolve().parents[2] / "bench" / "forecast_backtest.py"


def bench_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("forecast_backtest", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_short_synthetic_is_69_day_windows_of_the_next_draw() -> None:
    bench = bench_module()
    short = bench.load_set("short synthetic")
    assert len(short) == 34  # ten users and four families of six
    assert {len(values) for _, _, values in short} == {69}
    assert {label for label, _, _ in short} >= {"intermittent 0", "no weekly 5"}
    # the windows come from draw 1, not from the draw-0 series the same run scores
    lo, hi = bench.SHORT_DAYS
    mine = {label: values for label, _, values in short}
    for label, _, values in bench.load_set("heavy tails", 1):
        assert np.array_equal(mine[label], values[lo:hi])
    for label, _, values in bench.load_set("heavy tails", 0):
        assert not np.array_equal(mine[label], values[lo:hi])
    # another background draw moves the held-out windows too
    other = {label: values for label, _, values in bench.load_set("short synthetic", 1)}
    assert not np.array_equal(mine["heavy tails 0"], other["heavy tails 0"])
    # dated as the window's first day, so weekdays line up with the series they came from
    start = dict((label, first) for label, first, _ in bench.load_set("trend", 1))["trend 0"]
    assert dict((label, first) for label, first, _ in short)["trend 0"] == start + bench.timedelta(days=lo)
