"""Do two answers say the same thing? Used to label accepted drafts with a shadow
verifier answer, and to vote among a draft model's samples (the majority is the draft,
the majority's share a quality feature).

What "the same" means depends on the kind of answer:
- ``number`` (math): the final number (after ``####``, in ``\\boxed{}``, after "answer
  is", else the last number in the text), compared as exact decimals;
- ``code``: the code blocks with comments and layout removed (Python: its AST, so
  formatting and comments never matter), compared with a sequence ratio;
- ``text`` (prose): cosine similarity of embeddings when an embedder is given (the
  [semantic] extra), else overlap of content words (F1), which is cruder but needs nothing.

Pure: no I/O; the caller passes the embedder, if any.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import io
import re
import tokenize
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .live_signals import embedding_similarity

KINDS = ("number", "code", "text")
# Agreement above these counts as "the same answer". The prose ones are loose on purpose:
# two good answers to an open question are worded differently.
CODE_SAME = 0.9
TEXT_OVERLAP_SAME = 0.5
TEXT_COSINE_SAME = 0.8

_NUMBER = r"-?\$?\d[\d,]*(?:\.\d+)?"
_FINAL_PATTERNS = (
    re.compile(r"####\s*(" + _NUMBER + ")"),
    re.compile(r"\\boxed\{\s*(" + _NUMBER + r")\s*\}"),
    re.compile(r"answer\s*(?:is|:|=)\s*\**\s*(" + _NUMBER + ")", re.IGNORECASE),
)
_ANY_NUMBER = re.compile(_NUMBER)
_YES_NO = re.compile(
    r"\s*(?:is|are|does|do|did|can|could|should|was|were|will|would|has|have)\b", re.IGNORECASE
)
_FENCE = re.compile(r"```[^\n`]*\n(.*?)(?:```|\Z)", re.DOTALL)
_WORD = re.compile(r"[a-z0-9]+")
_LAYOUT = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
_STOP = frozenset(
    re.findall(
        r"\S+",
        "a an the and or but of to in on at for with by from is are was were be been it its this that "
        "these those as so if then than you your we our i he she they them their there here not no",
    )
)

Embed = Callable[[list[str]], Any]  # texts -> rows of vectors (a numpy array or lists)


# Methods whose disagreement is evidence that the draft is wrong. Two final numbers that
# differ cannot both be right; two programs or two paragraphs that differ often both are
# (bench/shadow_labels.py on MBPP: "the code differs" was right about a bad draft less than
# half the time), so there a disagreement is no verdict.
DISAGREEMENT_IS_A_VERDICT = frozenset({"number"})


@dataclass(frozen=True)
class Agreement:
    agree: bool
    score: float  # in [0, 1]
    method: str  # "number" | "code" | "text-overlap" | "text-embedding"; "none" when unmeasurable

    @property
    def verdict(self) -> bool | None:
        """The label for the draft: True when the answers agree, False when they disagree
        in a way that makes the draft wrong, else None (no verdict)."""
        if self.agree:
            return True
        return False if self.method in DISAGREEMENT_IS_A_VERDICT else None


def final_number(text: str) -> Decimal | None:
    """The answer's final number, or None when it states none."""
    for pattern in _FINAL_PATTERNS:
        found = pattern.findall(text)
        if found:
            return _decimal(found[-1])
    numbers = _ANY_NUMBER.findall(text)
    return _decimal(numbers[-1]) if numbers else None


def _decimal(raw: str) -> Decimal | None:
    try:
        value = Decimal(raw.replace(",", "").replace("$", ""))
    except InvalidOperation:
        return None
    return value.normalize() if value == value.to_integral_value() else value


def code_of(text: str) -> str | None:
    """The code in an answer: its fenced blocks joined, else None."""
    blocks = [b.strip() for b in _FENCE.findall(text) if b.strip()]
    return "\n".join(blocks) if blocks else None


def normalised_code(code: str) -> str:
    """Code without comments or formatting, as space-separated tokens: Python is parsed and
    unparsed first (so layout, comments and quoting never matter); other code, or Python
    that does not parse, is tokenized as it stands (whitespace-split as a last resort)."""
    with contextlib.suppress(SyntaxError, ValueError, RecursionError):
        code = ast.unparse(ast.parse(code))
    try:
        tokens = [
            t.string for t in tokenize.generate_tokens(io.StringIO(code).readline) if t.type not in _LAYOUT
        ]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        tokens = code.split()
    return " ".join(tokens)


def stated_final(text: str) -> bool:
    """Does the answer mark its final answer (``####``, ``\\boxed{}``, "the answer is")?"""
    return any(p.search(text) for p in _FINAL_PATTERNS)


def answer_kind(query: str, domain: str | None, answers: Sequence[str]) -> str:
    """Which comparison fits. ``number`` needs a final number in every answer, and either
    every answer marks it or the question is a math problem (given as math, or numbers in
    a query of no known domain) that is not a yes/no question: in an explanation (finance,
    medicine...) the last number is just the last example, not the answer."""
    if domain == "code" or (domain in (None, "general") and all(code_of(a) for a in answers)):
        return "code" if all(code_of(a) for a in answers) else "text"
    if not all(final_number(a) is not None for a in answers):
        return "text"
    if all(stated_final(a) for a in answers):
        return "number"
    mathy = domain == "math" or (domain is None and bool(_ANY_NUMBER.search(query)))
    return "number" if mathy and not _YES_NO.match(query) else "text"


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def overlap(a: str, b: str) -> float:
    """F1 of the content words (multisets) of two texts."""
    wa, wb = _words(a), _words(b)
    if not wa or not wb:
        return 1.0 if wa == wb else 0.0
    counts: dict[str, int] = {}
    for w in wa:
        counts[w] = counts.get(w, 0) + 1
    common = 0
    for w in wb:
        if counts.get(w, 0) > 0:
            counts[w] -= 1
            common += 1
    if common == 0:
        return 0.0
    precision, recall = common / len(wb), common / len(wa)
    return 2 * precision * recall / (precision + recall)


def agreement(a: str, b: str, kind: str, embed: Embed | None = None) -> Agreement:
    """How far answers ``a`` and ``b`` agree, for answers of ``kind``."""
    if not a.strip() or not b.strip():
        return Agreement(False, 0.0, "none")
    if kind == "number":
        na, nb = final_number(a), final_number(b)
        if na is None or nb is None:
            return Agreement(False, 0.0, "number")
        return Agreement(na == nb, 1.0 if na == nb else 0.0, "number")
    if kind == "code":
        ca, cb = code_of(a), code_of(b)
        if ca is None or cb is None:
            return agreement(a, b, "text", embed)
        ratio = difflib.SequenceMatcher(
            None, normalised_code(ca).split(" "), normalised_code(cb).split(" "), autojunk=False
        ).ratio()
        return Agreement(ratio >= CODE_SAME, round(ratio, 4), "code")
    facts = facts_agree(a, b)
    if embed is not None:
        cos = max(0.0, min(1.0, embedding_similarity(embed, a, b)))
        return Agreement(facts and cos >= TEXT_COSINE_SAME, round(cos, 4), "text-embedding")
    score = overlap(a, b)
    return Agreement(facts and score >= TEXT_OVERLAP_SAME, round(score, 4), "text-overlap")


_NAME = re.compile(r"\b[A-Z][A-Za-z]+")
_NEGATION = re.compile(r"\b(?:not|no|never|cannot|none|neither|nor)\b|n't\b", re.IGNORECASE)


def facts_agree(a: str, b: str) -> bool:
    """Similar wording is not the same answer: "the capital is Canberra" and "... Sydney",
    or "antibiotics do not cure colds" and "antibiotics cure colds", embed close together.
    So prose agrees only when every capitalised word (a name, more or less) and every
    number of the shorter answer also occurs in the longer one, and both negate or
    neither does."""
    short, long_ = sorted((a, b), key=len)
    long_words = set(_WORD.findall(long_.lower()))
    names = {w.lower() for w in _NAME.findall(short)} - _STOP
    long_numbers = {_decimal(n) for n in _ANY_NUMBER.findall(long_)}
    numbers = {_decimal(n) for n in _ANY_NUMBER.findall(short)}
    negates = bool(_NEGATION.search(short)) == bool(_NEGATION.search(long_))
    return names <= long_words and numbers <= long_numbers and negates


def answer_key(text: str, kind: str) -> str:
    """A canonical form for voting: equal keys are the same answer."""
    if kind == "number":
        value = final_number(text)
        return "" if value is None else str(value)
    if kind == "code":
        code = code_of(text)
        return normalised_code(code) if code is not None else " ".join(_words(text))
    return " ".join(_words(text))


@dataclass(frozen=True)
class Vote:
    index: int  # the first sample of the majority answer
    share: float  # the majority's share of the samples, in (0, 1]
    kind: str


def majority(query: str, domain: str | None, samples: Sequence[str], embed: Embed | None = None) -> Vote:
    """The majority answer among ``samples`` and its share. Numbers and code vote by their
    canonical form; prose groups samples that agree with the group's first member (so
    "the same answer in other words" still counts). Ties go to the earliest sample."""
    if not samples:
        raise ValueError("majority of no samples")
    kind = answer_kind(query, domain, [s for s in samples if s.strip()] or list(samples))
    groups: list[list[int]] = []
    if kind == "text":
        for i, s in enumerate(samples):
            for g in groups:
                if agreement(samples[g[0]], s, "text", embed).agree:
                    g.append(i)
                    break
            else:
                groups.append([i])
    else:
        keyed: dict[str, list[int]] = {}
        for i, s in enumerate(samples):
            keyed.setdefault(answer_key(s, kind) or f"\0{i}", []).append(i)
        groups = list(keyed.values())
    best = max(groups, key=lambda g: (len(g), -g[0]))
    return Vote(best[0], len(best) / len(samples), kind)
