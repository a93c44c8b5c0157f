"""The math families of the draft features (see :mod:`.features`): numbers in the
question and the answer, the stated final answer, where each calculation's operands come
from, and the dataflow from the question's numbers to the final answer.

Also the rule validator's continuous ``shape`` check (:func:`shape_score`), which reads the
same numbers. Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from .arithmetic import check_arithmetic

__all__ = ["final_answer", "math_features", "shape_score"]

# --------------------------------------------------------------------------- regexes

_NUM = r"-?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_NUMBER_RE = re.compile(r"(?<![\w.])" + _NUM.replace(r"-?\$?\s?", r"\$?") + r"(?![\d])")
_FINAL_RES = (
    re.compile(r"####\s*(" + _NUM + ")"),
    re.compile(r"\\boxed\{\s*(" + _NUM + ")"),
    re.compile(r"(?:final\s+)?answer\s*(?:is|:|=)\s*:?\s*\**\s*(" + _NUM + ")", re.IGNORECASE),
)
_EQUALS_RESULT_RE = re.compile(r"=\s*(" + _NUM + r")(?![\d*/+^(])")
_ANNOTATION_STRIP_RE = re.compile(r"<<[^<>]*>>")
_ANNOTATION_RE = re.compile(r"<<([^<>=]*)=([^<>]*)>>\s*(" + _NUM + ")?")
# (The leading lookaheads let the scan reject every position that cannot start a match at
# its first character: a third of the features' regex time otherwise.)
_CALC_RE = re.compile(r"(?=[-$\d])((?:" + _NUM + r"\s*[-+*/x×÷]\s*)+" + _NUM + r")\s*=")
# A calculation with its result, for the dataflow: "20 * 120 = 2400", "(400 + 240) / 2 = $320",
# "30% * 400 = 120" (calculator annotations are dropped first: they repeat the prose).
_FLOW_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_FLOW_CALC_RE = re.compile(
    r"(?=[($\d])((?:\(?\$?" + _FLOW_NUM + r"%?\)?\s*[-+*/x×÷]\s*)+\(?\$?" + _FLOW_NUM + r"\)?%?)"
    r"\s*=\s*\$?(" + _FLOW_NUM + ")"
)
_FLOW_NUMBER_RE = re.compile(r"(?<![\w.])" + _FLOW_NUM)
_HUNDREDTHS_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:%|percent\b|cents?\b)")
_COUNT_QUESTION_RE = re.compile(r"\bhow\s+many\b", re.IGNORECASE)
_SELF_CORRECTION_RE = re.compile(  # matched against lower-cased text
    r"\b(?=[waocimlrhtd])(?:wait|actually|oops|correction|i\s+made\s+a\s+mistake|mistake|"
    r"let\s+me\s+re\w*|"
    r"re-?calculat\w*|re-?evaluat\w*|however,\s+(?:this|that|we)|on\s+second\s+thought|"
    r"that's\s+not\s+right|this\s+is\s+incorrect|doesn't\s+make\s+sense)\b"
)
_WORD_NUMBERS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "hundred": 100,
    "thousand": 1000,
    "dozen": 12,
    "twice": 2,
    "double": 2,
    "half": 0.5,
    "triple": 3,
    "thrice": 3,
    "quarter": 0.25,
}
_WORD_NUMBER_RE = re.compile(  # matched against lower-cased text
    r"\b(?=[otfsenhdqw])(" + "|".join(_WORD_NUMBERS) + r")\b"
)
# "twice", "half as many", "3 times as long": a factor the question states in words, and
# the operands that apply it (a half is applied as / 2 or * 0.5) in a calculation that
# multiplies or divides.
_SCALING_RE = re.compile(r"[*/x×÷]")
_MULTIPLIER_WORDS = {
    "twice": (2.0,),
    "double": (2.0,),
    "doubled": (2.0,),
    "doubles": (2.0,),
    "triple": (3.0,),
    "tripled": (3.0,),
    "triples": (3.0,),
    "thrice": (3.0,),
    "half": (2.0, 0.5),
    "quarter": (4.0, 0.25),
}
_MULTIPLIER_RE = re.compile(  # matched against lower-cased text
    r"\b(?:("
    + "|".join(_MULTIPLIER_WORDS)
    + r")|(\d+(?:\.\d+)?|"
    + "|".join(w for w in _WORD_NUMBERS if w not in _MULTIPLIER_WORDS)
    + r")\s+times)\b"
)
# Numbers any solution may bring in without the query stating them: small integers,
# unit conversions (minutes, hours, days, weeks, months, percent), and halves.
_FREE_CONSTANTS = frozenset(
    {
        0.0,
        1.0,
        2.0,
        3.0,
        4.0,
        5.0,
        7.0,
        10.0,
        12.0,
        24.0,
        30.0,
        52.0,
        60.0,
        100.0,
        365.0,
        1000.0,
        0.5,
        0.25,
        0.01,
    }
)

# --------------------------------------------------------------------------- helpers


def _value(text: str) -> float | None:
    try:
        return float(text.replace("$", "").replace(",", "").replace(" ", ""))
    except ValueError:
        return None


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 + 1e-4 * max(abs(a), abs(b))


def _in(value: float, pool: Sequence[float] | set[float]) -> bool:
    """``value`` is in ``pool``: a set holds :func:`_key` values (parsed numbers compare
    exactly once rounded), a list is searched with a relative tolerance."""
    if isinstance(pool, set):
        return _key(value) in pool
    return any(_same(value, p) for p in pool)


def _key(value: float) -> float:
    return round(value, 6)


@lru_cache(maxsize=16)  # the rules' shape check and the math features read the same texts
def _numbers(text: str) -> tuple[float, ...]:
    return tuple(v for v in (_value(m.group()) for m in _NUMBER_RE.finditer(text)) if v is not None)


def final_answer(text: str) -> float | None:
    """The final answer the text states ("#### 42", "The answer is 42", ``\\boxed{42}``):
    the last such statement wins; None when there is none."""
    best: tuple[int, float] | None = None
    for pattern in _FINAL_RES:
        for m in pattern.finditer(text):
            value = _value(m.group(1))
            if value is not None and (best is None or m.start() > best[0]):
                best = (m.start(), value)
    return None if best is None else best[1]


def _final_candidates(text: str) -> int:
    values: list[float] = []
    for pattern in _FINAL_RES:
        for m in pattern.finditer(text):
            value = _value(m.group(1))
            if value is not None and not _in(value, values):
                values.append(value)
    return len(values)


def shape_score(query: str, text: str, words: int) -> tuple[float, str | None]:
    """The rule validator's ``shape`` check: a continuous sub-score, so the rule score
    orders clean drafts instead of giving them all 1.0. For a question with numbers: no
    stated final answer (x0.85), a final answer that is not the last computed result
    (x0.92), the share ``s`` of the question's numbers a worked answer never uses
    (x(1 - 0.2 s)).
    For every answer a mild length term ``1 - 0.1 * words / (words + 400)``: a draft that
    runs long is, more often than not, one that is struggling."""
    score = 1.0 - 0.1 * words / (words + 400)
    reasons: list[str] = []
    query_numbers = list(dict.fromkeys(v for v in _numbers(query) if v not in (0.0, 1.0)))
    if len(query_numbers) >= 2:
        answer_numbers = _numbers(text)
        final = final_answer(text)
        if final is None:  # else the answer's last line states it: "... so 60 - 40 = 20 cups."
            last_line = text.rstrip().rsplit("\n", 1)[-1]
            numbers = _numbers(last_line)
            final = numbers[-1] if numbers else None
        if final is None and answer_numbers:
            score *= 0.85
            reasons.append("no stated final answer")
        cut = text.find("####")
        results = [
            v
            for v in (_value(m.group(1)) for m in _EQUALS_RESULT_RE.finditer(text if cut < 0 else text[:cut]))
            if v is not None
        ]
        if final is not None and results and not _same(final, results[-1]):
            score *= 0.92
            reasons.append(f"final answer {final:g} is not the last result {results[-1]:g}")
        # a worked answer (one with calculations) that skips a given quantity
        answer_set = {_key(v) for v in answer_numbers}
        other = _alternatives(query)
        unused = [v for v in query_numbers if not _used(v, answer_set, other)] if results else []
        if unused:
            score *= 1.0 - 0.2 * len(unused) / len(query_numbers)
            reasons.append(f"never uses {', '.join(f'{v:g}' for v in unused[:4])} from the question")
    return score, "; ".join(reasons) or None


def _alternatives(query: str) -> dict[float, tuple[float, ...]]:
    """How a quantity of the question may appear in a correct answer besides as itself:
    a percentage or an amount in cents as the fraction that applies it (20% as 0.2, 0.8
    for 20% off, 1.2 for 20% more; 25 cents as 0.25). (A factor in words, "half as
    many", is ``query_multipliers_unused``'s to judge.)"""
    found: dict[float, tuple[float, ...]] = {}
    if "%" in query or "percent" in query or "cent" in query:
        for m in _HUNDREDTHS_RE.findall(query):
            share = float(m) / 100
            found[float(m)] = (share, 1 - share, 1 + share)
    return found


def _used(value: float, pool: set[float], alternatives: dict[float, tuple[float, ...]]) -> bool:
    """``value`` of the question appears in ``pool`` (:func:`_key` values), as itself or
    as one of its :func:`_alternatives`."""
    return _in(value, pool) or any(_in(v, pool) for v in alternatives.get(value, ()))


def math_features(query: str, text: str, out: dict[str, float]) -> None:
    query_numbers = [*_numbers(query), *(_WORD_NUMBERS[w] for w in _WORD_NUMBER_RE.findall(query.lower()))]
    distinct_query = list(dict.fromkeys(v for v in query_numbers if v not in (0.0, 1.0)))
    answer_numbers = _numbers(text)
    answer_set = {_key(v) for v in answer_numbers}
    other = _alternatives(query)
    unused = [v for v in distinct_query if not _used(v, answer_set, other)]
    out["query_numbers"] = float(len(distinct_query))
    out["query_numbers_unused"] = float(len(unused))
    out["query_numbers_unused_share"] = len(unused) / len(distinct_query) if distinct_query else 0.0
    out["no_number_answer"] = 0.0 if answer_numbers else 1.0

    final = final_answer(text)
    cut = text.find("####")
    before = text if cut < 0 else text[:cut]
    last_results = [
        v for v in (_value(m.group(1)) for m in _EQUALS_RESULT_RE.finditer(before)) if v is not None
    ]
    out["has_final"] = 1.0 if final is not None else 0.0
    if final is not None:
        out["final_is_last_result"] = 1.0 if last_results and _same(final, last_results[-1]) else 0.0
        whole = _same(final, round(final))
        out["final_not_integer_for_count"] = 1.0 if not whole and _COUNT_QUESTION_RE.search(query) else 0.0
        out["final_negative"] = 1.0 if final < 0 else 0.0
        out["final_in_query"] = 1.0 if _in(final, distinct_query) else 0.0
    out["final_candidates"] = float(_final_candidates(text))

    # Calculations and where their operands come from: the query, an earlier result, or
    # a well-known constant; anything else was made up along the way.
    known = {_key(v) for v in distinct_query} | _FREE_CONSTANTS
    steps = 0
    ungrounded = 0
    for m in _CALC_RE.finditer(text):
        steps += 1
        for operand in _numbers(m.group(1)):
            if not _in(abs(operand), known):
                ungrounded += 1
        end = text[m.end() : m.end() + 30]
        got = _EQUALS_RESULT_RE.match("=" + end)
        if got and (value := _value(got.group(1))) is not None:
            known.add(_key(abs(value)))
    out["calc_steps"] = float(steps)
    out["steps_per_query_number"] = steps / max(1, len(distinct_query))
    out["ungrounded_operands"] = float(ungrounded)
    copy_errors = 0
    for m in _ANNOTATION_RE.finditer(text):
        stated, shown = _value(m.group(2).strip()), m.group(3)
        if (
            stated is not None
            and shown is not None
            and (v := _value(shown)) is not None
            and not _same(v, stated)
        ):
            copy_errors += 1
    out["annotation_copy_errors"] = float(copy_errors)
    out["self_corrections"] = float(len(_SELF_CORRECTION_RE.findall(text.lower())))
    _steps(text, out)
    _dataflow(query, text, final, out)


def _steps(text: str, out: dict[str, float]) -> None:
    """Every stated step recomputed (:mod:`.arithmetic`): how many are wrong, their share,
    and how early the first one comes (an early slip carries into everything after it)."""
    check = check_arithmetic(text)
    wrong = len(check.wrong)
    out["steps_checked"] = float(check.steps)
    out["steps_wrong"] = float(wrong)
    out["steps_wrong_share"] = wrong / check.steps if check.steps else 0.0
    out["steps_wrong_any"] = 1.0 if wrong else 0.0
    out["steps_first_wrong_at"] = check.first_wrong_at
    out["steps_running_totals"] = float(check.running_totals)


def _flow_numbers(text: str) -> list[float]:
    return [float(m.replace(",", "")) for m in _FLOW_NUMBER_RE.findall(text)]


def _multipliers(query: str) -> list[tuple[float, ...]]:
    """The factors the question states in words, each with the operands that apply it."""
    found: list[tuple[float, ...]] = []
    for m in _MULTIPLIER_RE.finditer(query.lower()):
        if m.group(1):
            found.append(_MULTIPLIER_WORDS[m.group(1)])
        else:
            factor = _WORD_NUMBERS.get(m.group(2)) or float(m.group(2))
            found.append((float(factor),))
    return found


def _dataflow(query: str, text: str, final: float | None, out: dict[str, float]) -> None:
    """Which of the question's numbers the final answer is actually computed from.

    Each calculation ``a op b = r`` is an edge from its operands to ``r``; walking back from
    the final answer (the stated one, else the last result) gives the numbers it depends
    on. A question number outside that set was either never used or used only on a branch
    the answer then dropped ("... ate 2400 pounds" computed, then "#### 8000"): the
    commonest way a fluent worked answer goes wrong. Results computed and never used
    again (``dangling_results``) are the same failure seen from the other side.
    """
    matches = list(_FLOW_CALC_RE.finditer(_ANNOTATION_STRIP_RE.sub("", text)))
    calcs = [(_flow_numbers(m.group(1)), float(m.group(2).replace(",", ""))) for m in matches]
    scaling = {v for m in matches if _SCALING_RE.search(m.group(1)) for v in _flow_numbers(m.group(1))}
    if final is None and calcs:
        final = calcs[-1][1]
    given = {v for v in _flow_numbers(query) if v not in (0.0, 1.0)}
    made_from: dict[float, list[float]] = {}
    for operands, result in calcs:
        made_from.setdefault(result, operands)
    reached: set[float] = set()
    stack = [] if final is None else [abs(final)]
    while stack:
        value = stack.pop()
        if value not in reached:
            reached.add(value)
            stack.extend(made_from.get(value, ()))
    other = _alternatives(query)
    reached_keys = {_key(v) for v in reached}
    unused = sum(1 for v in given if v not in reached and not _used(v, reached_keys, other))
    out["final_unused_query_numbers"] = float(unused)
    out["final_unused_share"] = unused / len(given) if given else 0.0
    later: set[float] = set()
    dangling = 0
    for operands, result in reversed(calcs):  # a result no later calculation reads
        if result not in later and result not in given and (final is None or result != abs(final)):
            dangling += 1
        later.update(operands)
    out["dangling_results"] = float(dangling)
    # A factor the question states ("twice as many") that no product or quotient applies: the
    # draft read past it. A given number that three calculations or more read: the
    # draft applied it to every part ("67 were cracked" taken off each child's shells).
    operands: dict[float, int] = {}
    for numbers, _ in calcs:
        for v in numbers:
            operands[v] = operands.get(v, 0) + 1
    out["query_multipliers_unused"] = float(
        sum(1 for factors in _multipliers(query) if not any(f in scaling for f in factors))
    )
    out["query_numbers_reused"] = float(sum(1 for v in given if operands.get(v, 0) >= 3))
