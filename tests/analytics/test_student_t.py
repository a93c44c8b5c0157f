"""Student-t tail quantiles without scipy: checked against scipy.stats.t's values."""

from __future__ import annotations

import math

import pytest

from cascadeflow_cli.analytics.student_t import two_sided_isf, two_sided_sf

# (df, two-sided p, scipy.stats.t.isf(p / 2, df))
SCIPY = [
    (1.0, 0.001, 636.6192), (2.0, 0.1, 2.9200), (2.5, 0.003, 11.7299), (3.0, 0.003, 8.8915),
    (5.0, 0.01, 4.0321), (7.0, 0.5, 0.7111), (30.0, 0.001, 3.6460), (math.inf, 0.003, 2.9677),
    (math.inf, 0.01, 2.5758), (1e6, 0.5, 0.6745),
]


@pytest.mark.parametrize(("df", "p", "expected"), SCIPY)
def test_quantiles_match_scipy(df: float, p: float, expected: float) -> None:
    assert two_sided_isf(p, df) == pytest.approx(expected, rel=1e-4)
    assert two_sided_sf(expected, df) == pytest.approx(p, rel=1e-3)


def test_a_probability_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError):
        two_sided_isf(0.0, 3.0)
