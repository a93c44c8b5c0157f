"""Agreement of two answers (shadow labels) and the majority of samples (consistency)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cascadeflow_cli.quality.agreement import (
    agreement,
    answer_kind,
    facts_agree,
    final_number,
    majority,
    normalised_code,
    overlap,
)
from cascadeflow_cli.quality.live_signals import live_signals, quantile


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("She pays 3 * 4 = 12 dollars.\n#### 12", Decimal(12)),
        ("So the total is \\boxed{1,250}.", Decimal(1250)),
        ("The answer is: $18.50, since 37 / 2 = 18.5", Decimal("18.50")),
        ("First 5, then 7, finally 9 apples.", Decimal(9)),
        ("No numbers here.", None),
    ],
)
def test_final_number(text: str, number: Decimal | None) -> None:
    assert final_number(text) == number


def test_numbers_agree_on_value_not_wording() -> None:
    a = "Each box holds 6, so 7 boxes hold 42.\n#### 42"
    b = "The answer is 42.00"
    assert agreement(a, b, "number").agree
    c = "The answer is 41"
    verdict = agreement(a, c, "number")
    assert not verdict.agree and verdict.score == 0.0 and verdict.method == "number"


def test_code_agrees_despite_comments_and_layout_and_not_when_logic_differs() -> None:
    a = "```python\ndef f(x):\n    # double it\n    return x * 2\n```"
    b = "Here:\n```python\ndef f(x):  return x*2\n```"
    c = "```python\ndef f(x):\n    return x ** 2 + 1 if x else None\n```"
    assert normalised_code("def f(x):\n  return x*2") == normalised_code("def f(x):  # hi\n    return x * 2")
    assert agreement(a, b, "code").agree
    assert not agreement(a, c, "code").agree


def test_prose_overlap_fallback() -> None:
    a = "Paris is the capital of France and its largest city."
    b = "The capital of France is Paris, also its largest city."
    c = "Canberra is the capital of Australia."
    assert agreement(a, b, "text").agree and agreement(a, b, "text").method == "text-overlap"
    assert not agreement(a, c, "text").agree
    assert overlap(a, "") == 0.0


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("The capital of Australia is Canberra.", "The capital of Australia is Sydney."),
        ("Antibiotics do not cure a cold: it is viral.", "Antibiotics cure a cold: it is viral."),
        ("Take 2 tablets a day.", "Take 4 tablets a day."),
    ],
)
def test_similar_words_with_other_facts_do_not_agree(a: str, b: str) -> None:
    def embed(texts: list[str]) -> list[list[float]]:
        return [[1.0, 0.0] for _ in texts]  # as alike as embeddings get

    assert not facts_agree(a, b)
    assert not agreement(a, b, "text", embed).agree and agreement(a, b, "text", embed).verdict is None
    assert not agreement(a, b, "text").agree


def test_same_facts_in_other_words_agree() -> None:
    assert facts_agree("Paris is the capital of France.", "The capital of France is Paris, its largest city.")


def test_embedding_similarity_when_an_embedder_is_given() -> None:
    def embed(texts: list[str]) -> list[list[float]]:
        return [[1.0, 0.0] if "Paris" in t else [0.0, 1.0] for t in texts]

    verdict = agreement("Paris, of course.", "It is Paris.", "text", embed)
    assert verdict.agree and verdict.method == "text-embedding" and verdict.score == 1.0
    assert not agreement("Paris, of course.", "Lyon.", "text", embed).agree


def test_empty_answer_never_agrees() -> None:
    assert not agreement("", "42", "number").agree
    assert agreement("", "x", "text").method == "none"


def test_kind_follows_domain_and_content() -> None:
    assert answer_kind("What is 6*7?", None, ["It is 42.", "42"]) == "number"
    # an explanation's last number is an example, not its answer; a yes/no question has none
    explain = ["Roughly 68% lie within one deviation.", "About 68%, and 95% within two."]
    assert answer_kind("What does a standard deviation mean?", "finance", explain) == "text"
    assert answer_kind("Is 221 prime?", "math", ["No: 221 = 13 x 17.", "No, 221 is 13 times 17."]) == "text"
    assert answer_kind("Is 221 prime?", "finance", ["#### 0", "The answer is 0"]) == "number"  # stated
    assert answer_kind("Write a function", "code", ["```py\nx=1\n```", "```py\nx = 1\n```"]) == "code"
    assert answer_kind("Capital of France?", None, ["Paris.", "Paris!"]) == "text"


def test_majority_picks_the_most_common_final_answer() -> None:
    vote = majority("What is 6 times 7?", "math", ["It is 41.", "6*7 = 42", "The answer is 42."])
    assert vote.index == 1 and vote.share == pytest.approx(2 / 3) and vote.kind == "number"
    tie = majority("What is 2+2?", "math", ["4", "5"])
    assert tie.index == 0 and tie.share == 0.5


@pytest.mark.parametrize("text", ["a", "Paris.", "#### 12", "```py\nx = 1\n```", "the of and", "ab cd ab"])
def test_an_answer_agrees_with_itself(text: str) -> None:
    assert agreement(text, text, "text").agree
    assert majority("q", None, [text, text]).share == 1.0


def test_live_signals_summarise_logprobs() -> None:
    values = [-0.1, -0.2, -3.0, -0.05, -0.5]
    out = live_signals(values, 0.75)
    assert out["logprob_min"] == -3.0
    assert out["logprob_mean"] == pytest.approx(sum(values) / 5)
    assert (
        out["logprob_p10"] == pytest.approx(quantile(values, 0.1)) and out["logprob_p10"] < out["logprob_p25"]
    )
    assert out["agreement"] == 0.75
    assert live_signals(None, None) == {} and live_signals([], None) == {}
    assert quantile([1.0, 2.0, 3.0], 0.5) == 2.0
