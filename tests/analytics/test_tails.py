"""Thresholds fitted to a series' own scores: events among them are not read as its tail."""

from __future__ import annotations

import numpy as np

from cascadeflow_cli.analytics.tails import shift_needs, thresholds


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


def test_a_bounded_side_that_few_scores_hold_still_pages_at_its_rate() -> None:
    """Intermittent spend: 400 of 700 days tie at the centre (nothing spent, nothing
    expected) and the spend days' scores are bounded (at most 3.4). The spike side holds
    300 scores and carries the whole half-rate, and its tail is lighter than the normal's:
    the threshold extrapolates from the side's own tail, so at high it is passed by a few
    of them (5 per 1,000 days: 3.5 here), instead of lying above every score (4.2)."""
    rng = np.random.default_rng(3)
    scores = np.r_[np.zeros(400), np.clip(rng.normal(1.2, 0.8, 300), 0.05, 3.4)]
    upper, _ = thresholds(scores, 10.0)
    assert upper < float(scores.max())
    assert 1 <= int((scores >= upper).sum()) <= 7
    medium, _ = thresholds(scores, 3.0)
    assert upper < medium < 4.0  # was 4.86


def test_a_long_heavy_tailed_series_takes_its_own_quantile_at_high() -> None:
    """3,000 scores of a t with 2.5 degrees of freedom have 15 a side past high's rate:
    the threshold is their own quantile (of all the scores, the ones set aside included),
    passed by 5 a side per 1,000, where the extrapolated t's gave 5.3 and 7.7."""
    scores = np.random.default_rng(3).standard_t(2.5, 3000)
    upper, lower = thresholds(scores, 10.0)
    for passed in (np.mean(scores >= upper), np.mean(scores <= -lower)):
        assert 4.0 <= 1000 * float(passed) <= 6.0


def test_an_early_shift_need_comes_from_the_window_and_is_capped() -> None:
    """Before MIN_SHIFT_NULL out-of-sample look-aheads: nothing known yet is the cap; the
    window's stretches set it from there (a predictive t: few of them, a wide one), down
    to the fixed need when they are calm; with the null known, the cap no longer applies."""
    rng = np.random.default_rng(3)
    assert shift_needs([], 1.5, 5.0, early=[], most=2.25) == (2.25, 2.25)
    calm = shift_needs([], 1.5, 5.0, early=list(rng.normal(0, 0.05, 300)), most=2.25)
    assert calm == (1.5, 1.5)
    few = shift_needs([], 1.5, 5.0, early=list(rng.normal(0, 0.7, 20)), most=2.25)
    many = shift_needs([], 1.5, 5.0, early=list(rng.normal(0, 0.7, 300)), most=2.25)
    assert few == (2.25, 2.25) and 1.5 < many[0] < 2.25  # more stretches, a surer null
    wide = list(rng.normal(0, 1.0, 100))
    assert shift_needs(wide, 1.5, 5.0, early=[], most=2.25)[0] > 2.25
    assert shift_needs([], 1.5, 5.0) == (1.5, 1.5)  # no window given: the fixed need
