"""The feature vector of one draft: what the calibrated quality model reads.

ONE function, :func:`draft_features`, computes it for the live cascade, `cascade quality
check` and `cascade calibrate` alike, so the same draft gets the same numbers (and the
same decision) everywhere. Pure standard library; well under a millisecond per draft.

The families (each validated by cross-validated gain on labelled drafts, see
``bench/quality_frontier.py``):

* the rule validator's sub-scores (the rules are features now, not a verdict);
* shape: query and answer lengths and their ratio;
* math: a stated final answer or not, whether it is the last computed result, whether it
  is a whole number where the question asks for a count or an amount, numbers the query
  gives that the answer never uses, operands that come from nowhere, calculations that
  are wrong (:mod:`.arithmetic`), calculator annotations whose result is copied wrong,
  how many distinct final answers the text offers, self-correction markers;
* code: Python blocks that do not parse (``ast.parse`` only: model code is never run),
  unbalanced fences, a function that returns nothing, the function name a test in the
  query expects vs the ones defined;
* the query's domain and complexity (:mod:`cascadeflow_cli.routing`);
* live signals that may be absent (token log-probabilities, agreement of sampled final
  answers, query-answer embedding similarity): each has a ``missing_*`` indicator and a
  neutral value when absent, so a model fitted without them still scores with them off.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Sequence
from functools import lru_cache

from cascadeflow_cli.routing.complexity import complexity_of
from cascadeflow_cli.routing.domain import DOMAINS, MIN_CONFIDENCE, DomainDetector

from .validator import CHECK_NAMES, QualityResult, QualityValidator

__all__ = [
    "FEATURE_NAMES",
    "LIVE_SIGNALS",
    "draft_features",
    "feature_domain",
    "feature_vector",
    "final_answer",
]

# Live signals the caller may pass as keyword arguments (None = not measured).
LIVE_SIGNALS: tuple[str, ...] = (
    "logprob_mean",
    "logprob_min",
    "logprob_p10",
    "logprob_p25",
    "agreement",
    "similarity",
)
# The value a missing live signal takes (its missing_* indicator carries the absence).
_NEUTRAL = {
    "logprob_mean": 0.0,
    "logprob_min": 0.0,
    "logprob_p10": 0.0,
    "logprob_p25": 0.0,
    "agreement": 1.0,
    "similarity": 0.0,
}

# Continuous features that also enter squared: with both x and x^2 a linear model can
# say "too short is bad, too long is bad too" (cross-validated: +0.01 AUROC on both dev sets).
_SQUARED: tuple[str, ...] = (
    "log_query_chars",
    "log_answer_chars",
    "answer_query_ratio",
    "calc_steps",
    "steps_per_query_number",
    "code_lines",
    "rule_score",
    "rule_shape",
)

FEATURE_NAMES: tuple[str, ...] = (
    *(f"rule_{name}" for name in CHECK_NAMES),
    "rule_score",
    "log_query_chars",
    "log_answer_chars",
    "answer_query_ratio",
    "query_numbers",
    "query_numbers_unused",
    "query_numbers_unused_share",
    "has_final",
    "final_is_last_result",
    "final_not_integer_for_count",
    "final_negative",
    "final_in_query",
    "final_candidates",
    "no_number_answer",
    "calc_steps",
    "steps_per_query_number",
    "ungrounded_operands",
    "arithmetic_errors",
    "annotation_copy_errors",
    "self_corrections",
    "code_blocks",
    "code_parse_fail",
    "code_unbalanced_fence",
    "code_no_block",
    "code_no_return",
    "code_prints_only",
    "code_lines",
    "code_test_name_missing",
    "code_name_query_overlap",
    *(f"domain_{d}" for d in DOMAINS),
    "complexity",
    *LIVE_SIGNALS,
    *(f"missing_{s}" for s in LIVE_SIGNALS),
    *(f"{name}_sq" for name in _SQUARED),
)

_VALIDATOR = QualityValidator("balanced")
# The cascade's own routing detector: a query without a given domain gets the domain the
# cascade would route it to, so `quality check` and the live cascade see the same features.
_DETECTOR = DomainDetector(min_confidence=MIN_CONFIDENCE)
_COMPLEXITY = {"simple": 0.0, "medium": 1.0, "high": 2.0}

# --------------------------------------------------------------------------- regexes

_NUM = r"-?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_NUMBER_RE = re.compile(r"(?<![\w.])" + _NUM.replace(r"-?\$?\s?", r"\$?") + r"(?![\d])")
_FINAL_RES = (
    re.compile(r"####\s*(" + _NUM + ")"),
    re.compile(r"\\boxed\{\s*(" + _NUM + ")"),
    re.compile(r"(?:final\s+)?answer\s*(?:is|:|=)\s*:?\s*\**\s*(" + _NUM + ")", re.IGNORECASE),
)
_EQUALS_RESULT_RE = re.compile(r"=\s*(" + _NUM + r")(?![\d*/+^(])")
_ANNOTATION_RE = re.compile(r"<<([^<>=]*)=([^<>]*)>>\s*(" + _NUM + ")?")
_CALC_RE = re.compile(r"((?:" + _NUM + r"\s*[-+*/x×÷]\s*)+" + _NUM + r")\s*=")
_COUNT_QUESTION_RE = re.compile(r"\bhow\s+many\b", re.IGNORECASE)
_SELF_CORRECTION_RE = re.compile(
    r"\b(?:wait|actually|oops|correction|i\s+made\s+a\s+mistake|mistake|let\s+me\s+re\w*|"
    r"re-?calculat\w*|re-?evaluat\w*|however,\s+(?:this|that|we)|on\s+second\s+thought|"
    r"that's\s+not\s+right|this\s+is\s+incorrect|doesn't\s+make\s+sense)\b",
    re.IGNORECASE,
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
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "hundred": 100,
    "dozen": 12,
    "twice": 2,
    "double": 2,
    "half": 0.5,
    "triple": 3,
    "thrice": 3,
    "quarter": 0.25,
}
_WORD_NUMBER_RE = re.compile(r"\b(" + "|".join(_WORD_NUMBERS) + r")\b", re.IGNORECASE)
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

_FENCE_LINE_RE = re.compile(r"^[ \t]*(?:```|~~~)[ \t]*([\w+#-]*)", re.MULTILINE)
_DEF_RE = re.compile(r"^[ \t]*def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)
_TEST_CALL_RE = re.compile(r"\bassert\s+(?:not\s+)?\(?\s*(?:set\(|math\.isclose\()?\s*([A-Za-z_]\w*)\s*\(")
_IDENT_SPLIT_RE = re.compile(r"[a-z]+|[A-Z][a-z]*|\d+")
_QUERY_WORD_RE = re.compile(r"[a-z]+")


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
        unused = [v for v in query_numbers if not _in(v, answer_set)] if results else []
        if unused:
            score *= 1.0 - 0.2 * len(unused) / len(query_numbers)
            reasons.append(f"never uses {', '.join(f'{v:g}' for v in unused[:4])} from the question")
    return score, "; ".join(reasons) or None


def _math_features(query: str, text: str, out: dict[str, float]) -> None:
    query_numbers = [*_numbers(query), *(_WORD_NUMBERS[w.lower()] for w in _WORD_NUMBER_RE.findall(query))]
    distinct_query = list(dict.fromkeys(v for v in query_numbers if v not in (0.0, 1.0)))
    answer_numbers = _numbers(text)
    answer_set = {_key(v) for v in answer_numbers}
    unused = [v for v in distinct_query if not _in(v, answer_set)]
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
    out["self_corrections"] = float(len(_SELF_CORRECTION_RE.findall(text)))


def _code_blocks(text: str) -> tuple[list[str], bool]:
    """Fenced blocks tagged python (or untagged), and whether a fence is left open."""
    blocks: list[str] = []
    lines = text.split("\n")
    current: list[str] | None = None
    lang = ""
    for line in lines:
        m = _FENCE_LINE_RE.match(line)
        if m:
            if current is None:
                current, lang = [], m.group(1).lower()
            else:
                if lang in ("", "python", "py", "python3"):
                    blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks, current is not None


def _code_features(query: str, text: str, out: dict[str, float]) -> None:
    blocks, unbalanced = _code_blocks(text)
    out["code_unbalanced_fence"] = 1.0 if unbalanced else 0.0
    defined = _DEF_RE.findall(text)
    if not blocks and not defined:
        out["code_no_block"] = 1.0 if _DEF_RE.search(query) or "function" in query.lower() else 0.0
        return
    out["code_blocks"] = float(len(blocks))
    fails = 0
    lines = 0
    for block in blocks:
        lines += sum(1 for ln in block.split("\n") if ln.strip() and not ln.lstrip().startswith("#"))
        try:
            ast.parse(block)  # parsed only, never run
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            fails += 1
    out["code_parse_fail"] = fails / len(blocks) if blocks else 0.0
    out["code_lines"] = math.log1p(lines)
    code = "\n".join(blocks) if blocks else text
    if defined:
        out["code_no_return"] = 0.0 if re.search(r"^\s+(?:return|yield)\b", code, re.MULTILINE) else 1.0
        out["code_prints_only"] = 1.0 if out["code_no_return"] and "print(" in code else 0.0
    expected = _TEST_CALL_RE.findall(query)
    if expected:
        out["code_test_name_missing"] = 0.0 if expected[0] in defined else 1.0
    if defined:
        query_words = set(_QUERY_WORD_RE.findall(query.lower()))
        parts = [p.lower() for p in _IDENT_SPLIT_RE.findall(defined[0])]
        out["code_name_query_overlap"] = sum(p in query_words for p in parts) / len(parts) if parts else 0.0


# --------------------------------------------------------------------------- the vector


def draft_features(
    query: str,
    response: str | None,
    *,
    finish_reason: str | None = None,
    domain: str | None = None,
    rules: QualityResult | None = None,
    **live: float | None,
) -> dict[str, float]:
    """Every feature of :data:`FEATURE_NAMES` for one draft, as a name -> float mapping.

    ``domain``: the query's domain when the caller knows it (else detected from the
    query). ``rules``: the rule validator's result if already computed (else computed
    here with the balanced preset). ``live``: optional signals of :data:`LIVE_SIGNALS`
    (``logprob_mean=-0.2``, ``agreement=0.8`` ...); unknown names raise ``TypeError``.
    """
    unknown = set(live) - set(LIVE_SIGNALS)
    if unknown:
        raise TypeError(f"unknown live signal(s): {', '.join(sorted(unknown))}")
    text = (response or "").replace("\r\n", "\n")
    query = query or ""
    out = dict.fromkeys(FEATURE_NAMES, 0.0)
    if rules is None:
        rules = _VALIDATOR.validate(query, text, finish_reason=finish_reason, domain=domain)
    # Rules multiply their sub-scores, so a linear model reads them on a log scale.
    for name in CHECK_NAMES:
        out[f"rule_{name}"] = math.log(max(1e-3, float(rules.checks.get(name, 1.0))))
    out["rule_score"] = math.log(max(1e-3, float(rules.score)))
    out["log_query_chars"] = math.log1p(len(query))
    out["log_answer_chars"] = math.log1p(len(text))
    out["answer_query_ratio"] = math.log1p(len(text)) - math.log1p(len(query))

    if domain in DOMAINS:
        detected, level = domain, complexity_of(query, domain)
    else:
        found = _DETECTOR.detect(query)
        detected, level = found.domain, found.complexity
    out[f"domain_{detected}"] = 1.0
    out["complexity"] = _COMPLEXITY.get(level or "simple", 0.0)

    _math_features(query, text, out)
    # the rule check counted them already (one wrong -> 0.3, several -> 0.1): not twice
    arithmetic = rules.checks.get("arithmetic", 1.0)
    out["arithmetic_errors"] = 0.0 if arithmetic >= 1.0 else (1.0 if arithmetic >= 0.3 else 2.0)
    if "```" in text or "~~~" in text or "def " in text or detected == "code":
        _code_features(query, text, out)

    for name in _SQUARED:
        out[f"{name}_sq"] = out[name] * out[name]
    for name in LIVE_SIGNALS:
        value = live.get(name)
        if value is None or not isinstance(value, int | float) or math.isnan(value):
            out[name] = _NEUTRAL[name]
            out[f"missing_{name}"] = 1.0
        else:
            out[name] = float(value)
    return out


def feature_domain(features: dict[str, float]) -> str:
    """The domain a feature vector was computed for (given or detected)."""
    for name in DOMAINS:
        if features.get(f"domain_{name}"):
            return name
    return "general"


def feature_vector(features: dict[str, float], names: Sequence[str] = FEATURE_NAMES) -> list[float]:
    """The values of ``features`` in the order of ``names`` (a calibration's feature list)."""
    return [features.get(name, 0.0) for name in names]
