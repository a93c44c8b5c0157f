"""DomainDetector: rules, confidence, the signals it names, and bad input."""

from __future__ import annotations

import json

import pytest

from cascadeflow_cli.routing import DOMAINS, DomainDetector


@pytest.mark.parametrize(("query", "domain"), [
    ("Write a Python function that reverses a linked list in place.", "code"),
    ("Why does my JavaScript fetch() call throw a CORS error?", "code"),
    ("def add(a, b):\n    \"\"\"Return the sum.\n    >>> add(1, 2)\n    3\n    \"\"\"\n", "code"),
    ("Solve for x: 3x + 7 = 22", "math"),
    ("A baker sells 24 muffins each day at $3 each. How much money does she make in 5 days?", "math"),
    ("What is the derivative of sin(x) * x^2?", "math"),
    ("What are the early symptoms of type 2 diabetes and how is it treated?", "medical"),
    ("Does aspirin reduce mortality in patients after myocardial infarction?", "medical"),
    ("Is a verbal agreement enforceable in court if there is no written contract?", "legal"),
    ("Can my landlord keep the deposit if the lease says nothing about cleaning?", "legal"),
    ("What is the interest rate on a 30-year fixed mortgage?", "finance"),
    ("i think there is a fraudulent charge on my credit card", "finance"),
    ("What is the capital of France?", "general"),
    ("Set an alarm for 7 tomorrow morning", "general"),
    ("Recommend a good book about the history of Rome", "general"),
])
def test_clear_queries_get_their_domain(query: str, domain: str) -> None:
    assert DomainDetector().detect(query).domain == domain


def test_whole_words_only() -> None:
    """The seed matched substrings: "api" in "capital", "law" in "flaw", "nurse" in "nursery"."""
    result = DomainDetector().detect("The capital has a flaw: its nursery rhymes are old.")
    assert result.domain == "general"
    assert not any(result.signals.values())


def test_confidence_grows_with_evidence_and_signals_explain_it() -> None:
    detector = DomainDetector()
    weak = detector.detect("Which court?")
    strong = detector.detect("The plaintiff sued the defendant in federal court for breach of contract.")
    assert weak.domain == strong.domain == "legal"
    assert 0 < weak.confidence < strong.confidence <= 1
    assert {"plaintiff", "defendant", "breach", "contract"} <= set(strong.signals["legal"])
    assert strong.method == "rules" and strong.complexity in ("simple", "medium", "high")


def test_nothing_matched_is_general_with_modest_confidence() -> None:
    result = DomainDetector().detect("hello there")
    assert result.domain == "general" and result.confidence < 0.5


def test_min_confidence_turns_a_weak_guess_into_general() -> None:
    query = "What does the court decide?"
    assert DomainDetector().detect(query).domain == "legal"
    cautious = DomainDetector(min_confidence=0.99).detect(query)
    assert cautious.domain == "general"
    assert cautious.scores["legal"] > 0  # the evidence is kept


def test_a_subset_of_domains() -> None:
    detector = DomainDetector(["code", "legal"])
    assert detector.detect("What is the derivative of x^2?").domain == "general"
    assert detector.detect("Fix this Python bug").domain == "code"


@pytest.mark.parametrize("query", ["", "   ", "\x00\x01", "🙂" * 500, "a" * 100_000, "$$$ %%% ###"])
def test_odd_input_is_general_and_serialisable(query: str) -> None:
    result = DomainDetector().detect(query)
    assert result.domain in DOMAINS
    assert 0.0 <= result.confidence <= 1.0
    json.dumps(result.to_json(), allow_nan=False)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown domain"):
        DomainDetector(["code", "astrology"])
    with pytest.raises(ValueError, match="min_confidence"):
        DomainDetector(min_confidence=1.5)


@pytest.mark.parametrize(("query", "domain", "signal"), [
    ("Write me a short story about a lighthouse keeper and his cat", "general", "a writing task"),
    ("Draft an agenda for a two-day team offsite", "general", "a writing task"),
    ("Please rephrase this paragraph so it sounds friendlier", "general", "editing text"),
    ("How do I add a toolbar to a window in PyQt6?", "code", "pyqt"),
    ("how do I get the number of failing pods with PromQL", "code", "promql"),
    ("What is the usual treatment for acute appendicitis?", "medical", "clinical term"),
    ("Is laparoscopic cholecystectomy safe in the elderly?", "medical", "clinical term"),
    ("Pros and cons of day trading versus buying index funds and holding", "finance", "trading"),
])
def test_what_real_users_ask(query: str, domain: str, signal: str) -> None:
    result = DomainDetector().detect(query)
    assert result.domain == domain and signal in result.signals[domain]


@pytest.mark.parametrize("query", [
    "Write an animation script for a 30 second video about our bakery",  # a script, not code
    "We have a dichotomy here: nostalgia versus progress, seen under a microscopic lens",  # no -otomy etc.
])
def test_look_alikes_are_not_taken_for_code_or_medicine(query: str) -> None:
    result = DomainDetector().detect(query)
    assert "a request for code" not in result.signals["code"] and not result.signals["medical"]


def test_a_writing_task_takes_the_domain_of_its_subject() -> None:
    result = DomainDetector().detect("Write a short summary of the symptoms of diabetes for my patients")
    assert result.domain == "medical" and "a writing task" in result.signals["general"]


@pytest.mark.parametrize("query", [
    "How can I add the values on top of the bars of a seaborn barplot?",  # a library named, nothing else
    "Is there a way to debounce a websocket reconnect?",
])
def test_a_software_name_alone_is_sure_enough_to_route(query: str) -> None:
    result = DomainDetector(min_confidence=0.5).detect(query)
    assert result.domain == "code"


def test_asking_for_syntax_or_a_command_is_asking_for_code() -> None:
    result = DomainDetector().detect("Give me the syntax to run this every weekday at 7pm")
    assert "a request for code" in result.signals["code"]


def test_latex_commands_are_not_field_words() -> None:
    """``\\lambda`` in an equation is a Greek letter, not Python's lambda (nor AWS Lambda)."""
    result = DomainDetector().detect(r"Solve \ddot{x} + 2\lambda \dot{x} + \Omega^2 x = 0 for x(t)")
    assert result.domain == "math" and not result.signals["code"]
    assert "lambda" in DomainDetector().detect("What does lambda do in Python?").signals["code"]


def test_option_trading_is_finance() -> None:
    result = DomainDetector().detect("Is a bear put spread the same as a short bull put spread?")
    assert result.domain == "finance" and "put spread" in result.signals["finance"]
