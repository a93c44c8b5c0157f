"""QualityValidator: each rule fires on a flawed answer and stays quiet on a good one."""

from __future__ import annotations

import math
import time

import pytest

from cascadeflow_cli.quality import QualityPreset, QualityResult, QualityValidator
from cascadeflow_cli.quality.validator import CHECK_NAMES, expected_words

CAPITAL_Q = "What is the capital of France?"
EXPLAIN_Q = "Explain why the sky is blue."

GOOD_EXPLANATION = (
    "Sunlight contains every visible wavelength. As it passes through the atmosphere, it "
    "scatters off nitrogen and oxygen molecules, and this Rayleigh scattering is much "
    "stronger for short wavelengths than for long ones. Blue light is therefore scattered "
    "across the whole sky and reaches our eyes from every direction. At sunset the light "
    "crosses far more air, so most blue is scattered away and reds and oranges remain."
)


def clean(result: QualityResult) -> bool:
    """No deduction: no reason given, and only the continuous shape term below 1 (a clean
    answer no longer scores exactly 1.0, so a threshold can be moved)."""
    return not result.reasons and result.score >= 0.95 and all(
        v == 1.0 for k, v in result.checks.items() if k != "shape")


@pytest.fixture
def balanced() -> QualityValidator:
    return QualityValidator()


def check(result: QualityResult, name: str) -> float:
    return result.checks[name]


# --------------------------------------------------------------------------- result shape


def test_good_answer_scores_one_with_no_reasons(balanced: QualityValidator) -> None:
    result = balanced.validate(EXPLAIN_Q, GOOD_EXPLANATION)
    assert clean(result) and result.passed
    assert result.reasons == ()
    assert result.threshold == 0.7
    assert set(result.checks) == set(CHECK_NAMES)
    assert all(value == 1.0 for name, value in result.checks.items() if name != "shape")
    assert 0.95 <= result.checks["shape"] < 1.0  # continuous: clean answers are still ordered


def test_score_is_the_product_of_the_sub_scores(balanced: QualityValidator) -> None:
    # mildly hedged AND a little short: both deductions must show up in the score
    result = balanced.validate(EXPLAIN_Q, "I think it is because of Rayleigh scattering of light.")
    assert check(result, "hedging") < 1.0 and check(result, "length") < 1.0
    assert result.score == pytest.approx(math.prod(result.checks.values()), abs=1e-3)
    assert len(result.reasons) == 2
    assert result.reasons[0].startswith("hedging:") and result.reasons[1].startswith("length:")


def test_to_json_is_the_cli_row(balanced: QualityValidator) -> None:
    result = balanced.validate(EXPLAIN_Q, "I think it is because of Rayleigh scattering of light.")
    data = result.to_json()
    assert data == {"score": result.score, "passed": False, "threshold": 0.7,
                    "reasons": list(result.reasons), "checks": result.checks,
                    "probability": None, "calibrated": False}
    assert isinstance(data["reasons"], list) and data["checks"] is not result.checks


# --------------------------------------------------------------------------- empty


@pytest.mark.parametrize("response", ["", "   \n\t ", None, "...", "```\n```"])
def test_empty_or_wordless_response_scores_zero(
    balanced: QualityValidator, response: str | None
) -> None:
    result = balanced.validate(CAPITAL_Q, response)
    assert result.score == 0.0 and not result.passed
    assert check(result, "empty") == 0.0
    assert len(result.reasons) == 1 and result.reasons[0].startswith("empty:")


def test_single_word_answer_is_not_empty(balanced: QualityValidator) -> None:
    result = balanced.validate(CAPITAL_Q, "Paris")
    assert check(result, "empty") == 1.0 and result.passed


# --------------------------------------------------------------------------- truncated


@pytest.mark.parametrize("reason", ["length", "max_tokens", "LENGTH"])
def test_finish_reason_length_fails_even_a_fluent_answer(
    balanced: QualityValidator, reason: str
) -> None:
    result = balanced.validate(EXPLAIN_Q, GOOD_EXPLANATION, finish_reason=reason)
    assert check(result, "truncated") <= 0.1
    assert not result.passed and not QualityValidator("fast").validate(
        EXPLAIN_Q, GOOD_EXPLANATION, finish_reason=reason
    ).passed
    assert any("token limit" in r for r in result.reasons)


@pytest.mark.parametrize("reason", ["stop", "end_turn", None, ""])
def test_normal_finish_reasons_do_not_deduct(
    balanced: QualityValidator, reason: str | None
) -> None:
    assert clean(balanced.validate(EXPLAIN_Q, GOOD_EXPLANATION, finish_reason=reason))


def test_unclosed_code_fence_is_truncation(balanced: QualityValidator) -> None:
    answer = "Here is the function:\n\n```python\ndef add(a, b):\n    return a + b\n"
    result = balanced.validate("Write a Python function that adds two numbers.", answer)
    assert check(result, "truncated") < 0.5 and not result.passed
    assert any("unclosed code fence" in r for r in result.reasons)


def test_closed_code_fence_is_not_truncation(balanced: QualityValidator) -> None:
    answer = (
        "Use the built-in `sum` or plain addition:\n\n```python\ndef add(a: int, b: int) -> int:\n"
        "    return a + b\n```"
    )
    result = balanced.validate("Write a Python function that adds two numbers.", answer)
    assert check(result, "truncated") == 1.0
    assert result.passed


def test_unbalanced_calculator_annotation_is_truncation(balanced: QualityValidator) -> None:
    answer = "She gives 15 cups in the morning and 25 in the afternoon, a total of 15 + 25 = <<15+2"
    result = balanced.validate("How many cups does she give in total?", answer)
    assert check(result, "truncated") < 0.5 and not result.passed


def test_balanced_calculator_annotation_is_fine(balanced: QualityValidator) -> None:
    answer = "In total she gives 15 + 25 = <<15+25=40>>40 cups.\n#### 40"
    assert clean(balanced.validate("How many cups does she give in total?", answer))


@pytest.mark.parametrize(
    "answer",
    [
        "To fix it, open the settings page, clear the cache,",
        "Sam ran 3 miles on Monday and 3 on Friday, a total of 3 + 3 +",
        "We can set up the following equation:",
        "The main causes were the collapse of trade and",
        "Because the cache is invalidated on every write, the service slows down under the",
    ],
)
def test_dangling_endings_fail_balanced(balanced: QualityValidator, answer: str) -> None:
    result = balanced.validate(CAPITAL_Q, answer)
    assert check(result, "truncated") < 0.5 and not result.passed


def test_long_sentence_without_final_punctuation_is_a_weaker_deduction() -> None:
    answer = "Symptoms include sudden numbness, confusion, trouble seeing in one eye and a"
    cut = "Symptoms include sudden numbness, confusion, trouble seeing and severe headache"
    dangling = QualityValidator().validate("What are stroke symptoms?", answer)
    no_punct = QualityValidator().validate("What are stroke symptoms?", cut)
    assert 0.0 < check(dangling, "truncated") < check(no_punct, "truncated") < 1.0
    assert not no_punct.passed  # balanced escalates it ...
    assert QualityValidator("fast").validate("What are stroke symptoms?", cut).passed  # fast not


@pytest.mark.parametrize(
    "answer",
    [
        "Paris",
        "x = 12",
        "The steps:\n- install the package\n- run the command",
        "| name | age |\n|---|---|\n| Ann | 31 |",
        "Total cost of the new truck: 30,000 + 13,500 = $43,500",
        "Each day she saves 20 dollars.\n#### 20",
        "Use `**kwargs` to accept any keyword argument, e.g. `def f(**kwargs): ...` **C++**",
    ],
)
def test_endings_without_a_period_that_are_complete(
    balanced: QualityValidator, answer: str
) -> None:
    assert check(balanced.validate(CAPITAL_Q, answer), "truncated") == 1.0


def test_cut_off_number_is_not_excused_as_a_result_line(balanced: QualityValidator) -> None:
    answer = "Junior programmers are paid 20 * 2000 = $40000 and seniors 20 * 2000 = $40,00"
    assert check(balanced.validate(CAPITAL_Q, answer), "truncated") < 1.0


def test_code_domain_relaxes_the_missing_punctuation_heuristic(balanced: QualityValidator) -> None:
    answer = "import os\nfor name in sorted(os.listdir(path)): print(name, os.path.getsize(name))"
    prose_domain = balanced.validate("List files with sizes", answer)
    code_domain = balanced.validate("List files with sizes", answer, domain="code")
    assert check(code_domain, "truncated") == 1.0
    assert check(prose_domain, "truncated") <= check(code_domain, "truncated")


# --------------------------------------------------------------------------- refusal


@pytest.mark.parametrize(
    "answer",
    [
        "I'm sorry, but I can't help with that.",
        "I cannot assist with this request.",
        "As an AI language model, I cannot provide opinions on that.",
        "I'm unable to provide that information.",
        "I am not able to answer questions about this topic.",
        "Sorry, I won't do that.",
        "I must respectfully decline.",
        "I’m sorry, but I can’t help with that.",  # curly apostrophes
    ],
)
def test_refusals_fail_every_preset(answer: str) -> None:
    for preset in QualityPreset.NAMES:
        result = QualityValidator(preset).validate("How do I kill a stuck process?", answer)
        assert check(result, "refusal") <= 0.05, (preset, answer)
        assert not result.passed
        assert any(r.startswith("refusal:") for r in result.reasons)


def test_cannot_stress_enough_is_not_a_refusal(balanced: QualityValidator) -> None:
    answer = (
        "I cannot stress enough how important regular exercise is. It improves cardiovascular "
        "health, mood and sleep quality. Even a short daily walk helps, and strength training "
        "twice a week preserves muscle mass as you age."
    )
    result = balanced.validate("Why should I exercise?", answer)
    assert check(result, "refusal") == 1.0 and result.passed


def test_cant_help_but_is_not_a_refusal(balanced: QualityValidator) -> None:
    answer = "I can't help but recommend SQLite here: it is a single file and needs no server."
    assert check(balanced.validate("Which database for a CLI tool?", answer), "refusal") == 1.0


def test_refusal_wording_late_in_a_long_answer_is_ignored(balanced: QualityValidator) -> None:
    answer = GOOD_EXPLANATION + (
        " A chatbot that replies 'I cannot assist with that' to this question is simply "
        "being overcautious."
    )
    assert check(balanced.validate(EXPLAIN_Q, answer), "refusal") == 1.0


def test_disclaimer_before_a_long_answer_is_a_partial_deduction() -> None:
    answer = (
        "As an AI, I don't have personal opinions, but here is the physics. "
        + GOOD_EXPLANATION
        + "\n\nThe same effect explains why distant mountains look bluish: the air between "
        "you and the mountain scatters blue light towards you. Clouds are white because their "
        "water droplets are much larger than the wavelength of light and scatter all colours "
        "roughly equally."
    )
    fast = QualityValidator("fast").validate(EXPLAIN_Q, answer)
    strict = QualityValidator("strict").validate(EXPLAIN_Q, answer)
    assert 0.05 < check(fast, "refusal") < 1.0
    assert fast.passed and not strict.passed


# --------------------------------------------------------------------------- hedging


def test_hedge_dominated_answer_fails_every_preset() -> None:
    answer = "I'm not sure, but I think it might possibly be Paris. Maybe Lyon, I don't know."
    for preset in QualityPreset.NAMES:
        result = QualityValidator(preset).validate(CAPITAL_Q, answer)
        assert not result.passed, preset
    reason = QualityValidator().validate(CAPITAL_Q, answer).reasons[0]
    assert reason.startswith("hedging: 'I'm not sure'")
    assert "'I don't know'" in reason and "(+2 more) (6 in 2 sentences)" in reason


def test_one_might_in_a_long_answer_is_a_small_deduction(balanced: QualityValidator) -> None:
    answer = GOOD_EXPLANATION + " On a hazy day the sky might look paler."
    result = balanced.validate(EXPLAIN_Q, answer)
    assert 0.95 < check(result, "hedging") < 1.0
    assert result.passed
    assert result.reasons == ("hedging: 'might' (1 in 5 sentences)",)


@pytest.mark.parametrize(
    "answer",
    [
        "Maybelline was founded in 1915 by Thomas Lyle Williams.",
        "The storm mightily damaged the harbour walls.",
        "A recount is unlikely to change the result.",
        "She answered with admirable certainty and conviction.",
    ],
)
def test_hedge_words_inside_other_words_do_not_match(
    balanced: QualityValidator, answer: str
) -> None:
    assert check(balanced.validate("Tell me a fact.", answer), "hedging") == 1.0


def test_hedge_density_not_count_drives_the_score(balanced: QualityValidator) -> None:
    one_sentence = balanced.validate(CAPITAL_Q, "It is probably Paris.")
    long_answer = balanced.validate(
        EXPLAIN_Q, GOOD_EXPLANATION + " The effect is probably the best known in optics."
    )
    assert check(one_sentence, "hedging") < check(long_answer, "hedging")


def test_strong_hedges_weigh_more_than_mild_ones(balanced: QualityValidator) -> None:
    mild = balanced.validate(CAPITAL_Q, "I think the capital is Paris. It is on the Seine.")
    strong = balanced.validate(CAPITAL_Q, "I'm not sure the capital is Paris. It is on the Seine.")
    assert check(strong, "hedging") < check(mild, "hedging") < 1.0


def test_hedge_words_inside_code_blocks_are_ignored(balanced: QualityValidator) -> None:
    answer = "Like this:\n\n```python\nmaybe = might_fail()\nperhaps = maybe or None\n```"
    assert check(balanced.validate("Show a Python assignment example.", answer), "hedging") == 1.0


# --------------------------------------------------------------------------- length


def test_one_word_answer_to_an_explain_question_fails_every_preset() -> None:
    for preset in QualityPreset.NAMES:
        result = QualityValidator(preset).validate(EXPLAIN_Q, "Yes.")
        assert check(result, "length") < 0.5 and not result.passed, preset
    assert QualityValidator().validate(EXPLAIN_Q, "Yes.").reasons[0].startswith("length: 1 words")


def test_short_answer_to_a_short_factual_question_is_fine(balanced: QualityValidator) -> None:
    pairs = [(CAPITAL_Q, "Paris."), ("What is 7 * 8?", "56"), ("Is 17 prime?", "Yes.")]
    for query, answer in pairs:
        result = balanced.validate(query, answer)
        assert clean(result), (query, result.reasons)


@pytest.mark.parametrize(
    "query",
    [
        "Describe the water cycle.",
        "Compare TCP and UDP.",
        "Why do cats purr?",
        "How do I reverse a linked list?",
        "List the planets of the solar system.",
        "Please write a haiku about rain.",
        "What is the difference between a list and a tuple?",
    ],
)
def test_questions_that_demand_detail(balanced: QualityValidator, query: str) -> None:
    need, why = expected_words(query, balanced.preset)
    assert need == balanced.preset.min_words_elaborate, why
    assert not balanced.validate(query, "Mercury.").passed


@pytest.mark.parametrize(
    "query",
    [
        "Is a list mutable in Python?",
        "Does Python write bytecode files?",
        "How many legs does a spider have?",
        "How old is the universe?",
        "How are you?",
        "Explain in one word: is water wet?",
    ],
)
def test_questions_that_accept_short_answers(balanced: QualityValidator, query: str) -> None:
    assert expected_words(query, balanced.preset)[0] == 1
    assert check(balanced.validate(query, "Yes."), "length") == 1.0


def test_briefly_lowers_the_expected_length(balanced: QualityValidator) -> None:
    full, _ = expected_words("Explain recursion.", balanced.preset)
    brief, _ = expected_words("Briefly explain recursion.", balanced.preset)
    assert 1 <= brief < full


def test_long_question_expects_more_than_a_few_words(balanced: QualityValidator) -> None:
    query = (
        "A farmer has 20 chickens and each one eats three cups of feed a day. She gives them "
        "15 cups in the morning and 25 cups in the afternoon. How many cups does she need to "
        "give in the final meal of the day?"
    )
    need, why = expected_words(query, balanced.preset)
    assert 1 < need <= balanced.preset.min_words_elaborate and "words long" in why
    assert check(balanced.validate(query, "20"), "length") < 1.0
    worked = "She needs 3 * 20 = 60 cups a day and has given 15 + 25 = 40, so 60 - 40 = 20 cups."
    assert clean(balanced.validate(query, worked))


def test_code_counts_by_tokens_not_whitespace_words(balanced: QualityValidator) -> None:
    query = "Write a Python function that checks whether a number is even."
    code = "```python\ndef is_even(n: int) -> bool:\n    return n % 2 == 0\n```"
    # 11 whitespace-separated "words", but 19 identifiers and operators
    result = balanced.validate(query, code)
    assert check(result, "length") == 1.0 and clean(result)


# --------------------------------------------------------------------------- repetition


def test_repeated_sentence_is_degenerate(balanced: QualityValidator) -> None:
    answer = "Use a lock to avoid the race. " * 8
    result = balanced.validate("How do I avoid a race condition?", answer)
    assert check(result, "repetition") == 0.0 and not result.passed
    assert any("repeated 8 times" in r for r in result.reasons)


def test_repeated_line_three_times_fails_balanced(balanced: QualityValidator) -> None:
    answer = (
        "The server restarts when the config changes.\n" * 3
        + "Check the logs in /var/log for details."
    )
    result = balanced.validate("Why does my server restart?", answer)
    assert check(result, "repetition") <= 0.5 and not result.passed


def test_looping_phrase_without_line_breaks_is_caught_by_ngrams(balanced: QualityValidator) -> None:
    answer = "To sleep better, " + "keep a regular schedule, " * 15 + "and avoid screens."
    result = balanced.validate("How can I sleep better?", answer)
    assert check(result, "repetition") == 0.0
    assert any("4-word phrases are unique" in r for r in result.reasons)


def test_structured_but_varied_answer_is_not_repetition(balanced: QualityValidator) -> None:
    answer = "\n".join(
        f"Number of students in class {c} = {n} - {k} = {n - k}"
        for c, n, k in [("A", 30, 4), ("B", 28, 3), ("C", 25, 5), ("D", 31, 6)]
    ) + "\nSo the four classes have 96 students in total."
    assert check(balanced.validate("How many students are there?", answer), "repetition") == 1.0


def test_repeated_table_rows_are_not_repetition(balanced: QualityValidator) -> None:
    answer = "| feature | A | B |\n|---|---|---|\n" + "| supported | yes | yes |\n" * 4
    assert check(balanced.validate("Compare A and B.", answer), "repetition") == 1.0


# --------------------------------------------------------------------------- presets


def test_strict_rejects_a_mildly_hedged_answer_that_balanced_accepts() -> None:
    answer = "I think the capital of France is Paris."
    assert QualityValidator("balanced").validate(CAPITAL_Q, answer).passed
    assert not QualityValidator("strict").validate(CAPITAL_Q, answer).passed


def test_strict_demands_longer_explanations_than_balanced() -> None:
    answer = "Air molecules scatter blue sunlight far more strongly than red light."
    balanced = QualityValidator("balanced").validate(EXPLAIN_Q, answer)
    strict = QualityValidator("strict").validate(EXPLAIN_Q, answer)
    assert check(strict, "length") < check(balanced, "length")
    fast = QualityValidator("fast").validate(EXPLAIN_Q, answer)
    assert fast.passed and not strict.passed


def test_preset_object_and_name_are_equivalent() -> None:
    by_name = QualityValidator("strict").validate(CAPITAL_Q, "I think it is Paris.")
    by_obj = QualityValidator(QualityPreset.strict()).validate(CAPITAL_Q, "I think it is Paris.")
    assert by_name == by_obj


# --------------------------------------------------------------------------- thresholds


def test_threshold_argument_overrides_the_preset() -> None:
    answer = "I think the capital of France is Paris."
    default = QualityValidator("balanced").validate(CAPITAL_Q, answer)
    demanding = QualityValidator("balanced", threshold=0.95).validate(CAPITAL_Q, answer)
    assert default.passed and not demanding.passed
    assert demanding.threshold == 0.95 and demanding.score == default.score


def test_passed_is_score_at_least_threshold() -> None:
    answer = "I think the capital of France is Paris."
    score = QualityValidator().validate(CAPITAL_Q, answer).score
    assert QualityValidator(threshold=score).validate(CAPITAL_Q, answer).passed
    assert not QualityValidator(threshold=min(1.0, score + 0.001)).validate(
        CAPITAL_Q, answer
    ).passed


@pytest.mark.parametrize("threshold", [-0.1, 1.1, math.nan, True, "0.7"])
def test_invalid_threshold_is_rejected(threshold: object) -> None:
    with pytest.raises(ValueError, match="threshold"):
        QualityValidator("balanced", threshold=threshold)  # type: ignore[arg-type]


def test_unknown_preset_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown quality preset 'turbo'"):
        QualityValidator("turbo")


def test_preset_of_wrong_type_is_rejected() -> None:
    with pytest.raises(TypeError, match="QualityPreset"):
        QualityValidator(0.7)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- robustness


ODD_INPUTS = [
    ("", "a" * 5000),
    ("?", "." * 3000),
    ("Explain", "<<" * 500),
    ("Why?", "```" * 101),
    ("Explain everything", "I'm not sure. " * 300),
    ("x", "\n\n\n-\n|\n#\n"),
    ("巴黎是哪个国家的首都？请解释。", "巴黎是法国的首都，也是法国最大的城市。"),
    (CAPITAL_Q, "İstanbul İzmir I'M NOT SURE"),
    ("Explain " * 500, "ok"),
]


@pytest.mark.parametrize(("query", "response"), ODD_INPUTS)
def test_scores_stay_in_unit_interval_for_odd_inputs(query: str, response: str) -> None:
    for preset in QualityPreset.NAMES:
        result = QualityValidator(preset).validate(query, response, finish_reason="stop")
        assert 0.0 <= result.score <= 1.0
        assert all(0.0 <= v <= 1.0 for v in result.checks.values())
        assert result.passed == (result.score >= result.threshold)


def test_cjk_answers_are_counted_per_character(balanced: QualityValidator) -> None:
    answer = "天空呈现蓝色是因为瑞利散射：短波长的蓝光比红光更容易被空气分子散射到各个方向。"
    assert check(balanced.validate("Explain why the sky is blue.", answer), "length") == 1.0


@pytest.mark.parametrize(
    "response",
    ["\n" * 20_000 + "a", " \n" * 10_000 + "a", "a\n" * 10_000, "I'm not sure. " * 1_500],
)
def test_no_quadratic_blow_up_on_pathological_input(
    balanced: QualityValidator, response: str
) -> None:
    start = time.perf_counter()
    result = balanced.validate(EXPLAIN_Q, response)
    elapsed = time.perf_counter() - start
    assert 0.0 <= result.score <= 1.0
    # linear work takes a few ms here; a quadratic regex takes seconds
    assert elapsed < 0.5


def test_a_wrong_sum_fails_an_otherwise_fine_answer(balanced: QualityValidator) -> None:
    query = "Tom has 15 apples and buys 25 more. How many apples does he have now?"
    right = balanced.validate(query, "Tom starts with 15 apples and buys 25 more, so 15 + 25 = 40 apples.")
    wrong = balanced.validate(query, "Tom starts with 15 apples and buys 25 more, so 15 + 25 = 30 apples.")
    assert right.passed and right.checks["arithmetic"] == 1.0
    assert not wrong.passed and wrong.checks["arithmetic"] < 0.5
    assert any(r.startswith("arithmetic: '15 + 25 = 30' is wrong: it is 40") for r in wrong.reasons)


def test_arithmetic_inside_code_is_not_judged(balanced: QualityValidator) -> None:
    code = "```python\n# the old bug: 15 + 25 = 30\nassert add(15, 25) == 40\n```"
    answer = f"Here is the test:\n{code}\nIt checks the sum."
    assert balanced.validate("Write a test for addition.", answer).checks["arithmetic"] == 1.0
    prose = balanced.validate("Explain the old bug.", "The old bug said 15 + 25 = 30.")
    assert prose.checks["arithmetic"] < 1

