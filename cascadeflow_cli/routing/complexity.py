"""How demanding a query looks: "simple", "medium" or "high".

A rough, explainable heuristic for routing and reporting, not a judgement of the answer:
long queries, several questions in one, words that ask for reasoning ("prove", "design",
"step by step") and, for code, the kind of work asked for ("optimize", "concurrent")
push it up. ``CodeComplexityAnalyzer`` keeps the seed's interface for code queries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_REASONING = re.compile(
    r"\b(why|explain|prove|proof|derive|justify|compare|contrast|analy[sz]e|evaluate|design|"
    r"step[- ]by[- ]step|trade-?offs?|implications?|critique|argue)\b", re.I)
_CODE_HIGH = re.compile(
    r"\b(algorithm|optimi[sz]e|concurren\w*|async\w*|parallel|thread-safe|database schema|architecture|"
    r"design pattern|refactor\w*|distributed|scal(e|able|ability)|performance|complexity)\b", re.I)
_CODE_MEDIUM = re.compile(
    r"\b(loop|array|list|dictionary|function|class|recursion|recursive|parse|regex|sort\w*|api)\b", re.I)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_WORD = re.compile(r"\w+")

ESTIMATED_TOKENS = {"simple": 100, "medium": 300, "high": 800}  # a typical answer's length


def complexity_of(query: str, domain: str | None = None) -> str:
    """"simple", "medium" or "high" for ``query`` (``domain`` lets code and math queries
    count their own signs of difficulty)."""
    words = len(_WORD.findall(query))
    points = 0
    points += 1 if words > 40 else 0
    points += 1 if words > 120 else 0
    points += 1 if query.count("?") > 1 else 0
    points += 1 if _REASONING.search(query) else 0
    if domain == "code":
        points += 2 if _CODE_HIGH.search(query) else (1 if _CODE_MEDIUM.search(query) else 0)
    elif domain == "math":
        points += 1 if len(_NUMBER.findall(query)) >= 4 else 0
    if points >= 3:
        return "high"
    return "medium" if points >= 1 else "simple"


@dataclass(frozen=True)
class CodeComplexity:
    complexity: str  # "simple" | "medium" | "high"
    requires_reasoning: bool
    estimated_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return {"complexity": self.complexity, "requires_reasoning": self.requires_reasoning,
                "estimated_tokens": self.estimated_tokens}


class CodeComplexityAnalyzer:
    """The seed's analyzer of code queries: how complex, whether it needs reasoning, and
    a typical answer length in tokens."""

    def analyze(self, query: str) -> CodeComplexity:
        level = complexity_of(query, "code")
        reasoning = bool(_REASONING.search(query)) or level == "high"
        return CodeComplexity(level, reasoning, ESTIMATED_TOKENS[level])
