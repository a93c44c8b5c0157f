"""Stated arithmetic that is wrong: found in prose, and nothing else is."""

from __future__ import annotations

import time

import pytest

from cascadeflow_cli.quality.arithmetic import wrong_arithmetic

WRONG = [
    ("15 + 25 = 30", "15 + 25 = 30", 40),
    ("so <<3*60=170>>170 miles", "3*60=170", 180),
    ("He pays $36 × 2 = $62 in all.", "36*2 = 62", 72),
    ("3 x 4 = 13 apples", "3*4 = 13", 12),
    ("10/40 = 30%", "10/40 = 30%", 0.25),
    ("1,200 + 300 = 1,400", "1200 + 300 = 1400", 1500),
    ("(3 + 4) * 2 = 15", "(3 + 4) * 2 = 15", 14),
    ("5 - 7 = 2", "5 - 7 = 2", -2),
    ("22 + 4 * 12 = 22 + 48 = 80", "22 + 48 = 80", 70),  # the last step of a chain
    ("1 + 1 = 2 and 2 + 2 = 5", "2 + 2 = 5", 4),
    ("(3 + 4 = 8)", "3 + 4 = 8", 7),
]

RIGHT_OR_NOT_ARITHMETIC = [
    "15 + 25 = 40", "<<15+25=40>>40", "$36 × 2 = $72", "3 x 4 = 12 apples", "10 / 3 = 3.33",
    "22/7 = 3.14", "1/3 = 0.3", "10/40 = 25%", "0.2 * 40 = 8%", "0.33 - 0.2 = 0.1333",
    "15 + 25 = 40 + 10 = 50", "22 + 4 * 12 = 22 + 48 = 70", "9 / (3/4) = 9 * (4/3) = 12",
    "$1000 \\* 0.8 = $800", "5 - 7 = -2",
    # not plain arithmetic, or not ours to judge
    "2x + 3 = 11", "x + 3 + 4 = 12", "2^3 + 1 = 9", "f(3) + 2 = 6", "3 * 5 = 15x", "x = 3 + 4",
    "3 + 4 ≈ 8", "assert add(2, 3) == 5", "a == 3 + 4", "10 / 0 = 5", "It is 5 + 2 = 7.", "",
]


@pytest.mark.parametrize(("text", "written", "correct"), WRONG)
def test_wrong_sums_are_found(text: str, written: str, correct: float) -> None:
    [found] = wrong_arithmetic(text)
    assert found.text == written
    assert found.correct == pytest.approx(correct)


@pytest.mark.parametrize("text", RIGHT_OR_NOT_ARITHMETIC)
def test_right_sums_and_other_things_are_left_alone(text: str) -> None:
    assert wrong_arithmetic(text) == []


@pytest.mark.parametrize("text", ["(" * 20_000 + "1", "1 + " * 5_000 + "= 3", "1 = " * 5_000,
                                  "1" + " " * 20_000, "\n" * 20_000 + "a"])
def test_linear_on_pathological_input(text: str) -> None:
    start = time.perf_counter()
    wrong_arithmetic(text)
    assert time.perf_counter() - start < 0.5  # a backtracking regex took 9 s on the first
