"""Thresholds fitted to a series' own scores: events among them are not read as its tail."""

from __future__ import annotations

import numpy as np

from cascadeflow_cli.analytics.tails import thresholds


def test_a_few_large_drops_do_not_raise_the_drop_threshold() -> None:
    """Seven scores of -6 among 700 ordinary ones (an event every few weeks) are set aside
    before the fit: the drop threshold stays where the clean scores put it, instead of the
    3.7 that reading them as the tail gave."""
    clean = np.random.default_rng(5).normal(0.0, 1.0, 700)
    dirty = clean.copy()
    dirty[::100] = -6.0
    clean_upper, clean_lower = thresholds(clean, 3.0)
    upper, lower = thresholds(dirty, 3.0)
    assert abs(lower - clean_lower) < 0.1 and abs(upper - clean_upper) < 0.15
    assert lower < 3.3


def test_a_heavy_tailed_series_keeps_its_heavy_thresholds_at_every_rate() -> None:
    """Setting aside what passes the thresholds does not eat into a genuinely heavy tail
    (a t with 2.5 degrees of freedom): each rate's thresholds are passed by about that
    many scores per 1,000, not by more and more as the fit is repeated."""
    scores = np.random.default_rng(11).standard_t(2.5, 3000)
    passed = []
    for rate in (1.0, 3.0, 10.0):
        upper, lower = thresholds(scores, rate)
        assert upper > 5.0 and lower > 5.0  # a normal's would be 2.6-3.3
        passed.append(1000 * float(np.mean((scores >= upper) | (scores <= -lower))))
    assert passed[0] <= 4.0 and passed[1] <= 7.5 and 5.0 <= passed[2] <= 15.0, passed


def test_too_few_scores_get_the_normal_thresholds() -> None:
    upper, lower = thresholds(np.array([0.1, -0.2, np.nan, 5.0]), 3.0)
    assert upper == lower and 2.9 < upper < 3.0
