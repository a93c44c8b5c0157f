"""analytics/regular.py: which histories are a regular payment, and what its paths hold."""

from __future__ import annotations

import numpy as np
import pytest

from cascadeflow_cli.analytics.regular import schedule, schedule_paths


def _series(days: list[int], amounts: list[float], length: int) -> np.ndarray:
    y = np.zeros(length)
    y[days] = amounts
    return y


def test_a_fixed_amount_at_a_fixed_interval_is_a_schedule() -> None:
    plan = schedule(_series([0, 21, 42, 63, 84], [5.0] * 5, 90))
    assert plan is not None and plan.every == 21 and plan.amount == 5.0
    assert plan.counts(30) == (1, 2) and plan.counts(42) == (2, 2)
    # a day late once, a cent dearer: still the same payment
    assert schedule(_series([0, 21, 43, 64], [5.0, 5.0, 5.01, 5.0], 70)) is not None


@pytest.mark.parametrize(("days", "amounts", "length"), [
    ([0, 21], [5.0, 5.0], 30),                      # two payments: one gap is no interval
    ([0, 18, 42, 63], [5.0] * 4, 70),               # a gap three days short
    ([0, 21, 42, 63], [5.0, 5.0, 6.0, 5.0], 70),    # one payment 20% dearer
    ([0, 1, 2, 3, 4], [5.0] * 5, 6),                # every day: no schedule
    ([0, 21, 42, 63], [5.0] * 4, 100),              # 36 days since the last: stopped?
])
def test_what_is_not_a_schedule(days: list[int], amounts: list[float], length: int) -> None:
    assert schedule(_series(days, amounts, length)) is None


def test_paths_hold_whole_payments_at_the_interval() -> None:
    plan = schedule(_series([0, 21, 42, 63, 84], [5.0] * 5, 90))
    assert plan is not None
    paths, expected = schedule_paths(plan, 30, 4000, np.random.default_rng(0))
    totals = paths.sum(axis=1)
    assert set(np.round(totals, 9)) == {5.0, 10.0}
    assert np.mean(totals == 10.0) == pytest.approx(9 / 21, abs=0.03)  # the phase is unknown
    assert expected.sum() == pytest.approx(5.0 * 30 / 21)
