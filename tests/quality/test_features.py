"""The feature vector: one function, same numbers for the same draft, every family doing
what it says."""

from __future__ import annotations

import math
import time

import pytest

from cascadeflow_cli.quality.features import FEATURE_NAMES, LIVE_SIGNALS, draft_features, final_answer

QUERY = (
    "A shop sells 12 boxes of pens with 6 pens in each box, and 9 loose pens. "
    "How many pens does it sell in total?"
)
GOOD = "The boxes hold 12 * 6 = 72 pens. With the loose ones: 72 + 9 = 81.\n#### 81"


def test_every_feature_is_a_finite_float_in_a_fixed_order() -> None:
    features = draft_features(QUERY, GOOD)
    assert tuple(features) == FEATURE_NAMES
    assert all(isinstance(v, float) and math.isfinite(v) for v in features.values())
    assert draft_features(QUERY, GOOD) == features  # pure: same draft, same numbers


def test_rules_are_features() -> None:
    cut = draft_features(QUERY, "The boxes hold 12 * 6 = <<12*6=", finish_reason="length")
    assert cut["rule_truncated"] < draft_features(QUERY, GOOD)["rule_truncated"]
    assert draft_features(QUERY, "")["rule_empty"] < 0


def test_final_answer_and_last_result() -> None:
    assert final_answer(GOOD) == 81.0
    assert final_answer("So the answer is $1,250.50.") == 1250.5
    assert final_answer("no number here") is None
    good = draft_features(QUERY, GOOD)
    assert good["has_final"] == 1.0 and good["final_is_last_result"] == 1.0
    assert good["query_numbers_unused"] == 0.0
    off = draft_features(QUERY, "The boxes hold 12 * 6 = 72 pens. 72 + 9 = 81.\n#### 72")
    assert off["final_is_last_result"] == 0.0
    skipped = draft_features(QUERY, "The boxes hold 12 * 6 = 72 pens.\n#### 72")
    assert skipped["query_numbers_unused"] == 1.0 and skipped["final_in_query"] == 0.0
    none = draft_features(QUERY, "We multiply and then add the loose pens")
    assert none["has_final"] == 0.0


def test_dataflow_finds_a_branch_the_final_answer_drops() -> None:
    # the 9 loose pens are added on a side branch, then the answer states the boxes only
    dropped = draft_features(QUERY, "The boxes hold 12 * 6 = 72 pens. With the loose: 72 + 9 = 81.\n#### 72")
    assert dropped["final_unused_query_numbers"] == 1.0
    assert dropped["final_unused_share"] == pytest.approx(1 / 3)  # of 12, 6 and 9
    assert dropped["dangling_results"] == 1.0  # the 81 computed, never used again
    # "query_numbers_unused" (does the text mention 9 at all?) cannot see it
    assert dropped["query_numbers_unused"] == 0.0
    good = draft_features(QUERY, GOOD)
    assert good["final_unused_query_numbers"] == 0.0 and good["dangling_results"] == 0.0
    # annotations repeat the prose and are not counted twice; the last result stands in
    # for a final answer that is not stated
    annotated = draft_features(QUERY, "12 * 6 = <<12*6=72>>72 pens, 72 + 9 = <<72+9=81>>81 in all.")
    assert annotated["final_unused_query_numbers"] == 0.0 and annotated["dangling_results"] == 0.0


def test_count_question_with_a_fractional_answer_and_wrong_arithmetic() -> None:
    frac = draft_features(QUERY, "12 * 6 = 72 and 72 + 9 = 81, split in two is 40.5.\n#### 40.5")
    assert frac["final_not_integer_for_count"] == 1.0
    wrong = draft_features(QUERY, "12 * 6 = 60 pens, 60 + 9 = 69.\n#### 69")
    assert wrong["steps_wrong"] == 1.0 and wrong["steps_wrong_any"] == 1.0
    copied = draft_features(QUERY, "12 * 6 = <<12*6=72>>75 pens.\n#### 84")
    assert copied["annotation_copy_errors"] == 1.0


def test_a_wrong_step_lowers_the_step_features() -> None:
    good = draft_features(QUERY, GOOD)
    assert good["steps_checked"] == 2.0 and good["steps_wrong"] == 0.0
    assert good["steps_wrong_share"] == 0.0 and good["steps_first_wrong_at"] == 1.0
    # the slip in the first of two steps: half the steps wrong, and early in the text
    early = draft_features(
        QUERY, "The boxes hold 12 * 6 = 60 pens. With the loose ones: 60 + 9 = 69.\n#### 69"
    )
    assert early["steps_wrong"] == 1.0 and early["steps_wrong_share"] == 0.5
    assert early["steps_first_wrong_at"] < 0.3
    late = draft_features(
        QUERY, "The boxes hold 12 * 6 = 72 pens. With the loose ones: 72 + 9 = 91.\n#### 91"
    )
    assert early["steps_first_wrong_at"] < late["steps_first_wrong_at"] < 1.0
    # a chain whose middle does not hold, units and dollars read past
    chained = draft_features(QUERY, "12 * 6 + 9 = 72 + 9 = $81 in all, and 12 pens + 6 = 19 pens.\n#### 81")
    assert chained["steps_wrong"] == 1.0  # 12 + 6 = 19; the chain holds
    # a running total written as an equation: not wrong, counted on its own
    running = draft_features(QUERY, "12 * 6 = 72 + 9 = 81 pens.\n#### 81")
    assert running["steps_running_totals"] == 1.0 and running["steps_wrong"] == 0.0


def test_a_factor_the_question_states_in_words_and_no_step_applies() -> None:
    query = "Ann has 12 shells. Ben has twice as many shells as Ann. How many shells do they have?"
    applied = draft_features(query, "Ben has 12 * 2 = 24 shells, so 12 + 24 = 36.\n#### 36")
    skipped = draft_features(query, "Ben has 12 + 12 = 24 shells... 12 + 24 = 36.\n#### 36")
    assert applied["query_multipliers_unused"] == 0.0 and skipped["query_multipliers_unused"] == 1.0
    three = "Cal is 7 years old. Dee is three times as old as Cal. How old is Dee?"
    assert draft_features(three, "7 * 3 = 21\n#### 21")["query_multipliers_unused"] == 0.0
    assert draft_features(three, "7 + 3 = 10\n#### 10")["query_multipliers_unused"] == 1.0


def test_a_percentage_applied_as_a_fraction_is_used() -> None:
    query = "A coat costs $80. It is sold at 25% off. What does it cost now?"
    as_share = draft_features(query, "The discount is 80 * 0.25 = 20, so 80 - 20 = 60.\n#### 60")
    as_rest = draft_features(query, "It costs 80 * 0.75 = 60.\n#### 60")
    ignored = draft_features(query, "It costs 80 - 10 = 70.\n#### 70")
    for used in (as_share, as_rest):
        assert used["query_numbers_unused"] == 0.0 and used["final_unused_query_numbers"] == 0.0
    assert ignored["query_numbers_unused"] == 1.0 and ignored["final_unused_query_numbers"] == 1.0
    assert as_share["rule_shape"] > ignored["rule_shape"]  # the rule's shape check reads it alike


def test_a_given_number_applied_to_every_part() -> None:
    query = "Tom found 214 shells, Nan 432 and Ben 86. 67 were cracked. How many good shells?"
    each = "214 - 67 = 147, 432 - 67 = 365, 86 - 67 = 19, and 147 + 365 + 19 = 531.\n#### 531"
    once = "214 + 432 + 86 = 732 shells, and 732 - 67 = 665 are good.\n#### 665"
    assert draft_features(query, each)["query_numbers_reused"] == 1.0
    assert draft_features(query, once)["query_numbers_reused"] == 0.0


def test_code_features_parse_only() -> None:
    query = "Write a python function to add two numbers. assert add_two(1, 2) == 3"
    ok = draft_features(query, "```python\ndef add_two(a, b):\n    return a + b\n```")
    assert ok["code_blocks"] == 1.0 and ok["code_parse_fail"] == 0.0
    assert ok["code_test_name_missing"] == 0.0 and ok["code_no_return"] == 0.0
    # would raise if it ran; it is only parsed
    broken = draft_features(query, "```python\ndef add(a, b):\n    raise SystemExit(a +\n```")
    assert broken["code_parse_fail"] == 1.0 and broken["code_test_name_missing"] == 1.0
    open_fence = draft_features(query, "```python\ndef add_two(a, b):\n    print(a + b)\n")
    assert open_fence["code_unbalanced_fence"] == 1.0
    prints = draft_features(query, "```python\ndef add_two(a, b):\n    print(a + b)\n```")
    assert prints["code_no_return"] == 1.0 and prints["code_prints_only"] == 1.0


def test_a_call_of_a_function_the_code_never_defines() -> None:
    """A draft that calls a helper it never writes (or imports) raises NameError when run:
    read from the parse alone, on the default path."""
    query = "Write a function to merge three sorted lists."
    missing = "```python\ndef merge(a, b, c):\n    return merge_two(merge_two(a, b), c)\n```"
    assert draft_features(query, missing)["code_calls_undefined"] == 1.0
    # in another block, imported, a builtin, a class, an argument, a loop or with target:
    # all bound; a star import could bind anything
    bound = (
        "```python\nfrom math import gcd\nimport functools as ft\n"
        "def lcm(a, b, key=None):\n    for f in (key,):\n        pass\n"
        "    return abs(a * b) // gcd(a, b) + len(sorted([f(a)])) + ft.reduce(max, [a]) + key(a)\n```\n"
        "Using it:\n```python\nclass P:\n    pass\nwith open('x') as h:\n    h(1)\n"
        "g = lcm\nprint(g(lcm(2, 3), 4), P())\n```"
    )
    assert draft_features(query, bound)["code_calls_undefined"] == 0.0
    assert draft_features(query, "```python\nfrom math import *\ndef f(a):\n    return gcd(a, 2)\n```")[
        "code_calls_undefined"
    ] == 0.0
    unparsed = "```python\ndef f(a:\n    return g(a)\n```"
    assert draft_features(query, unparsed)["code_calls_undefined"] == 0.0  # parse_fail says it


def test_live_signals_are_optional_with_missing_indicators() -> None:
    absent = draft_features(QUERY, GOOD)
    assert all(absent[f"missing_{s}"] == 1.0 for s in LIVE_SIGNALS)
    given = draft_features(QUERY, GOOD, logprob_mean=-0.4, agreement=0.6, logprob_min=float("nan"))
    assert given["logprob_mean"] == -0.4 and given["missing_logprob_mean"] == 0.0
    assert given["agreement"] == 0.6 and given["missing_agreement"] == 0.0
    assert given["missing_logprob_min"] == 1.0  # NaN counts as not measured
    with pytest.raises(TypeError, match="unknown live signal"):
        draft_features(QUERY, GOOD, entropy=0.1)


def test_domain_given_or_detected() -> None:
    assert draft_features(QUERY, GOOD, domain="code")["domain_code"] == 1.0
    assert draft_features(QUERY, GOOD)["domain_math"] == 1.0


def test_fast_enough_for_a_long_draft() -> None:
    long = (GOOD + "\n") * 40
    start = time.process_time()  # CPU time: a loaded shared machine does not make it flaky
    for _ in range(20):
        draft_features(QUERY, long)
    # generous: the 1 ms target is measured in bench/overhead.py, this only catches blow-ups
    assert (time.process_time() - start) / 20 < 0.05
