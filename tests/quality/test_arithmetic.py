"""Stated arithmetic that is wrong: found in prose, and nothing else is."""

from __future__ import annotations

import time

import pytest

from cascadeflow_cli.quality.arithmetic import check_arithmetic, wrong_arithmetic

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
    # every "=" of a chain is a step, not only the last
    ("(-48 + 21 - 3) / 3 = -20/3 = -6.67", "(-48 + 21 - 3) / 3 = -20/3", -10),
    ("6.75 * 3 + 15.75 + 66 = 20.25 + 66", "6.75 * 3 + 15.75 + 66 = 20.25 + 66", 102),
    # a unit between a number and the next operator is read past; "$ 40" is a number
    ("14 mL + 42 = 66 mL", "14 mL + 42 = 66", 56),
    ("8 x $5 = $ 45 in all", "8*5 = 45", 40),
    ("20% of the 50 is 25% * 50 = 15", "25% * 50 = 15", 12.5),
    # the prose around calculator annotations reads on: "42 - 18 = 24 * 2 = 50"
    ("42 - 18 = <<42-18=24>>24 * 2 = <<24*2=48>>50", "24 * 2 = 50", 48),
]

RIGHT_OR_NOT_ARITHMETIC = [
    "15 + 25 = 40",
    "<<15+25=40>>40",
    "$36 × 2 = $72",
    "3 x 4 = 12 apples",
    "10 / 3 = 3.33",
    "22/7 = 3.14",
    "1/3 = 0.3",
    "10/40 = 25%",
    "0.2 * 40 = 8%",
    "0.33 - 0.2 = 0.1333",
    "15 + 25 = 40 + 10 = 50",
    "22 + 4 * 12 = 22 + 48 = 70",
    "9 / (3/4) = 9 * (4/3) = 12",
    "$1000 \\* 0.8 = $800",
    "5 - 7 = -2",
    # not plain arithmetic, or not ours to judge
    "2x + 3 = 11",
    "x + 3 + 4 = 12",
    "2^3 + 1 = 9",
    "f(3) + 2 = 6",
    "3 * 5 = 15x",
    "x = 3 + 4",
    "3 + 4 ≈ 8",
    "assert add(2, 3) == 5",
    "a == 3 + 4",
    "10 / 0 = 5",
    "It is 5 + 2 = 7.",
    "",
    # a name after an operator or glued to a number is algebra; multiplying words are not units
    "240 * 100% = 40 * Total",
    "50,000 = 8,000 + 4,000 + Production",
    "S + 5S - 4 = 116",
    "2 dozen * 3 = 72",
    "4 dozens + 2 = 50",
    "100% - 40% = 60%",
    # running totals written as chains are not wrong (counted apart, see below)
    "4 * 3 + 6 = 18 + 6 = 24",
]


@pytest.mark.parametrize(("text", "written", "correct"), WRONG)
def test_wrong_sums_are_found(text: str, written: str, correct: float) -> None:
    [found] = wrong_arithmetic(text)
    assert found.text == written
    assert found.correct == pytest.approx(correct)


@pytest.mark.parametrize("text", RIGHT_OR_NOT_ARITHMETIC)
def test_right_sums_and_other_things_are_left_alone(text: str) -> None:
    assert wrong_arithmetic(text) == []


def test_steps_are_counted_with_where_the_first_wrong_one_stands() -> None:
    right = check_arithmetic("12 * 6 = 72 pens, 72 + 9 = 81 in all.")
    assert (right.steps, right.wrong, right.first_wrong_at) == (2, (), 1.0)
    late = check_arithmetic("12 * 6 = 72 pens, 72 + 9 = 91 in all.")
    early = check_arithmetic("12 * 6 = 60 pens, 60 + 9 = 69 in all.")
    assert late.steps == early.steps == 2 and len(late.wrong) == len(early.wrong) == 1
    assert 0 <= early.first_wrong_at < late.first_wrong_at < 1
    running = check_arithmetic("Bill is on 4 * 3 + 6 = <<4*3+6=18+6=24>>24th floor.")
    assert running.running_totals == 1 and running.wrong == ()
    # a step both annotated and written out is one wrong step, not two
    assert len(check_arithmetic("3 * 60 = <<3*60=170>>170 miles").wrong) == 1


@pytest.mark.parametrize(
    "text",
    [
        "(" * 20_000 + "1",
        "1 + " * 5_000 + "= 3",
        "1 = " * 5_000,
        "1" + " " * 20_000,
        "\n" * 20_000 + "a",
        "(" * 20_000 + "1 = 2",
        "1 mL + " * 5_000 + "1 = 2",
        "<<1+1=3>>" * 3_000,
    ],
)
def test_linear_on_pathological_input(text: str) -> None:
    start = time.process_time()  # CPU time: a loaded shared machine does not make it flaky
    wrong_arithmetic(text)
    assert time.process_time() - start < 0.5  # a backtracking regex took 9 s on the first
