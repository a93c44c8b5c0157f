"""Complexity of a query: simple, medium or high, and the seed's code analyzer."""

from __future__ import annotations

from cascadeflow_cli.routing import CodeComplexityAnalyzer, complexity_of


def test_levels() -> None:
    assert complexity_of("What is the capital of France?") == "simple"
    assert complexity_of("Explain why the sky is blue.") == "medium"
    long_question = ("Compare the trade-offs of three database designs for a ledger, explain why each "
                     "fails under concurrency, and design a schema that avoids it? Which is cheapest? ") * 3
    assert complexity_of(long_question, "code") == "high"


def test_code_analyzer() -> None:
    analyzer = CodeComplexityAnalyzer()
    simple = analyzer.analyze("print hello world")
    hard = analyzer.analyze("Optimize this concurrent algorithm and explain the trade-offs")
    assert simple.complexity == "simple" and not simple.requires_reasoning
    assert hard.complexity == "high" and hard.requires_reasoning
    assert hard.estimated_tokens > simple.estimated_tokens
    assert hard.to_dict()["complexity"] == "high"
