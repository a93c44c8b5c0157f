"""Rule-based quality validator for draft (cheap-model) answers.

The validator decides whether a draft is good enough to return, or whether the
query should escalate to a stronger model. It is pure (no I/O), uses only the
standard library, and takes well under a millisecond for a typical answer.

Scoring design
--------------
Seven independent checks each produce a sub-score in [0, 1], read as "how
plausible is it that this aspect of the answer is fine" (1.0 = no evidence of a
problem):

``empty``       0 for an empty / whitespace-only answer (or one with no letters or
                digits at all); the final score is then 0 and nothing else is run.
``truncated``   0.05 when the provider reports ``finish_reason`` "length" (or
                "max_tokens" / "max_output_tokens"); 0.35 for an unclosed code fence
                or an unbalanced ``<<`` calculator annotation; 0.45 for an answer
                ending on a dangling token (comma, colon, operator, "the", "and",
                ...); 0.6 when a prose last line of 8+ words lacks terminal
                punctuation (list items, table rows, headings, "#### 42" and
                "Total: $43,500"-style result lines are exempt).
``refusal``     0.05 when a refusal ("I can't help with that", "As an AI language
                model, I cannot ...") opens a short answer (<= 60 words) or makes up
                half its sentences; 0.5 when it opens a 61-120 word answer; 0.75
                when a longer answer opens with one (a disclaimer, then content).
                Refusal wording elsewhere in a long answer is ignored.
``hedging``     ``1 / (1 + (d / tolerance)^2) * 0.85^strong`` where ``d`` is the
                weighted hedge density (hedges per sentence; strong hedges weigh
                1.0, mild ones 0.5) and ``strong`` the number of strong hedges.
``length``      ``sqrt(words / expected)`` capped at 1, where ``expected`` comes from
                what the question demands (see :func:`expected_words`).
``arithmetic``  0.3 when a stated calculation in the prose is wrong ("15 + 25 = 30",
                "<<3*60=170>>"), 0.1 when several are (see :mod:`.arithmetic`).
``shape``       continuous evidence from the answer's shape (see
                :func:`.features.shape_score`): a stated final answer that is the last
                computed result, the question's numbers used, a mild length term; so
                clean drafts no longer all score 1.0 and a threshold can be moved.
``repetition``  the minimum of a repeated-line score (``1 - 0.25 * (n - 1)`` once a
                line or sentence of 3+ words occurs ``n >= max_line_repeats`` times)
                and a linear ramp from ``ngram_unique_floor`` (0) to
                ``ngram_unique_ok`` (1) on the share of unique word 4-grams.

Text inside closed code fences is ignored by the hedging, refusal and repeated-line
rules and counted by tokens (identifiers and operators) for the length rule.

The final score is the **product** of the sub-scores. A product treats the checks
as independent pieces of evidence: one severe problem (refusal, truncation) is
enough to fail, while several small deductions (one "might", a slightly short
answer) compound gently instead of being ignored as they would under ``min``.
The score is rounded to 4 decimals and ``passed`` is ``score >= threshold``.

The patterns and text views the checks read live in :mod:`.rule_text`.

These rules see form, not correctness -- apart from stated arithmetic: a fluent,
confident answer with wrong reasoning but right sums passes.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .arithmetic import wrong_arithmetic
from .math_features import shape_score
from .presets import QualityPreset, _check_unit
from .rule_text import (  # the patterns and text views the checks read
    _ALNUM_RE,
    _DANGLING_END_RE,
    _DANGLING_WORDS,
    _FENCE_RE,
    _HEDGE_RE,
    _OK_LAST_LINE_RE,
    _REFUSAL_RE,
    _RESULT_LINE_RE,
    _SOFT_TRUNC_MIN_WORDS,
    _TOKEN_RE,
    Doc,
    _clip,
    _count_words,
    _norm,
    _quote,
    _sentences,
    expected_words,
)

__all__ = ["CHECK_NAMES", "QualityResult", "QualityValidator", "expected_words"]

CHECK_NAMES: tuple[str, ...] = (
    "empty",
    "truncated",
    "refusal",
    "hedging",
    "length",
    "repetition",
    "arithmetic",
    "shape",
)

# finish / stop reasons meaning "cut off by the token limit" across providers.
_LENGTH_FINISH_REASONS = frozenset({"length", "max_tokens", "max_output_tokens"})

# Sub-scores of the truncation check (lower = stronger evidence of truncation).
_TRUNC_FINISH_LENGTH = 0.05
_TRUNC_STRUCTURAL = 0.35  # unclosed ``` fence or unbalanced "<<"
_TRUNC_DANGLING = 0.45  # ends on ",", ":", "+", "the", "and" ...
_TRUNC_NO_PUNCT = 0.6  # long prose last line without terminal punctuation

_ARITHMETIC_ONE = 0.3  # one stated calculation is wrong ("15 + 25 = 30")
_ARITHMETIC_MANY = 0.1  # several are

_REFUSAL_STRONG = 0.05  # the answer is a refusal
_REFUSAL_MOSTLY = 0.5  # opens with a refusal, followed by a little content
_REFUSAL_PARTIAL = 0.75  # opens with a refusal/disclaimer, then a substantial answer
_REFUSAL_START_CHARS = 200  # "near the start" = a match beginning within this many chars
_REFUSAL_SHORT_WORDS = 60  # an answer this short that opens with a refusal *is* a refusal
_REFUSAL_MEDIUM_WORDS = 120

_HEDGE_STRONG_WEIGHT = 1.0
_HEDGE_MILD_WEIGHT = 0.5
_HEDGE_STRONG_FACTOR = 0.85


# --------------------------------------------------------------------------- result


@dataclass(frozen=True)
class QualityResult:
    """Outcome of :meth:`QualityValidator.validate`.

    Attributes:
        score: overall score in [0, 1]; higher = more confident the draft is good enough.
        passed: ``score >= threshold``.
        threshold: the threshold that was applied.
        reasons: one short human-readable reason per deduction (empty when nothing
            was wrong), e.g. ``"hedging: 'I'm not sure', 'possibly'"``.
        checks: per-check sub-scores in [0, 1], keyed by :data:`CHECK_NAMES`.
        probability: the calibrated probability that the draft is good enough (a
            calibrated validator's score), None for the rule validator.
        calibrated: whether ``score`` comes from a calibration.
    """

    score: float
    passed: bool
    threshold: float
    reasons: tuple[str, ...]
    checks: dict[str, float]
    probability: float | None = None
    calibrated: bool = False

    def to_json(self) -> dict[str, Any]:
        """The `cascade quality check --json` row of CLI.md (without ``id``)."""
        return {
            "score": self.score,
            "passed": self.passed,
            "threshold": self.threshold,
            "reasons": list(self.reasons),
            "checks": dict(self.checks),
            "probability": self.probability,
            "calibrated": self.calibrated,
        }


# --------------------------------------------------------------------------- validator


class QualityValidator:
    """Score a draft answer with fast rule-based checks (see the module docstring).

    Args:
        preset: a :class:`QualityPreset` or the name of a built-in one
            (``"fast"``, ``"balanced"``, ``"strict"``).
        threshold: overrides the preset's threshold; must be within [0, 1].
    """

    def __init__(
        self, preset: QualityPreset | str = "balanced", threshold: float | None = None
    ) -> None:
        if isinstance(preset, str):
            preset = QualityPreset.named(preset)
        elif not isinstance(preset, QualityPreset):
            raise TypeError(
                f"preset must be a QualityPreset or a preset name, got {type(preset).__name__}"
            )
        if threshold is not None:
            _check_unit("threshold", threshold)
        self.preset: QualityPreset = preset
        self.threshold: float = float(preset.threshold if threshold is None else threshold)

    def __repr__(self) -> str:
        return f"QualityValidator(preset={self.preset.name!r}, threshold={self.threshold})"

    def validate(
        self,
        query: str,
        response: str | None,
        *,
        finish_reason: str | None = None,
        domain: str | None = None,
    ) -> QualityResult:
        """Score ``response`` as an answer to ``query``.

        Args:
            query: the user's question (used by the length check).
            response: the draft answer; ``None`` is treated as empty.
            finish_reason: the provider's finish / stop reason; ``"length"``
                (or ``"max_tokens"``) means the answer was cut off.
            domain: optional hint; ``"code"`` relaxes the "no terminal
                punctuation" heuristic, since code rarely ends with a period.
        """
        text = (response or "").replace("\r\n", "\n").replace("\u2019", "'")
        query = (query or "").replace("\u2019", "'")

        checks = dict.fromkeys(CHECK_NAMES, 1.0)
        if not text.strip() or not _ALNUM_RE.search(text):
            checks["empty"] = 0.0
            why = "response is empty" if not text.strip() else "response has no words"
            return self._result(0.0, (f"empty: {why}",), checks)

        doc = Doc(text)
        results = {
            "truncated": self._check_truncated(doc, finish_reason, domain),
            "refusal": self._check_refusal(doc),
            "hedging": self._check_hedging(doc),
            "length": self._check_length(query, doc),
            "repetition": self._check_repetition(doc),
            "arithmetic": self._check_arithmetic(doc),
            "shape": self._check_shape(query, doc),
        }
        reasons: list[str] = []
        for name, (sub, reason) in results.items():
            checks[name] = round(min(1.0, max(0.0, sub)), 4)
            if reason is not None and checks[name] < 1.0:
                reasons.append(f"{name}: {reason}")
        return self._result(math.prod(checks.values()), tuple(reasons), checks)

    # ------------------------------------------------------------------ internals

    def _result(
        self, score: float, reasons: tuple[str, ...], checks: dict[str, float]
    ) -> QualityResult:
        score = round(min(1.0, max(0.0, score)), 4)
        return QualityResult(
            score=score,
            passed=score >= self.threshold,
            threshold=self.threshold,
            reasons=reasons,
            checks=checks,
        )

    @staticmethod
    def _check_truncated(
        doc: Doc, finish_reason: str | None, domain: str | None
    ) -> tuple[float, str | None]:
        if finish_reason and finish_reason.strip().lower() in _LENGTH_FINISH_REASONS:
            return _TRUNC_FINISH_LENGTH, f"finish_reason={finish_reason!r} (hit the token limit)"
        text = doc.text
        if len(_FENCE_RE.findall(text)) % 2 == 1:
            return _TRUNC_STRUCTURAL, "unclosed code fence"
        if text.count("<<") > text.count(">>"):
            return _TRUNC_STRUCTURAL, "unbalanced '<<' (cut off mid-calculation)"

        last_line = text.rstrip().rsplit("\n", 1)[-1].strip()
        last_char = last_line[-1]
        tail = _clip(last_line[-40:])
        if _DANGLING_END_RE.search(last_line) and _ALNUM_RE.search(last_line):
            return _TRUNC_DANGLING, f"ends on a dangling {last_char!r}: '…{tail}'"
        if not last_char.isalnum():
            return 1.0, None
        tokens = _TOKEN_RE.findall(last_line)
        if len(tokens) > 1 and tokens[-1].lower() in _DANGLING_WORDS:
            return _TRUNC_DANGLING, f"ends mid-sentence on {tokens[-1]!r}: '…{tail}'"
        if (
            (domain or "").lower() == "code"
            or _OK_LAST_LINE_RE.match(last_line)
            or _RESULT_LINE_RE.search(last_line)
        ):
            return 1.0, None
        if _count_words(last_line) >= _SOFT_TRUNC_MIN_WORDS:
            return _TRUNC_NO_PUNCT, f"no terminal punctuation: '…{tail}'"
        return 1.0, None

    @staticmethod
    def _check_shape(query: str, doc: Doc) -> tuple[float, str | None]:
        return shape_score(query, doc.text, doc.words)

    @staticmethod
    def _check_arithmetic(doc: Doc) -> tuple[float, str | None]:
        wrong = wrong_arithmetic(doc.prose)
        if not wrong:
            return 1.0, None
        first = wrong[0]
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        score = _ARITHMETIC_ONE if len(wrong) == 1 else _ARITHMETIC_MANY
        return score, f"'{_clip(first.text)}' is wrong: it is {first.correct:g}{more}"

    @staticmethod
    def _check_refusal(doc: Doc) -> tuple[float, str | None]:
        matches = list(_REFUSAL_RE.finditer(doc.prose_lower))
        if not matches:
            return 1.0, None
        phrases = list(
            dict.fromkeys(doc.original(doc.prose_lower, m.start(), m.end()) for m in matches)
        )
        at_start = matches[0].start() < _REFUSAL_START_CHARS
        sentences = _sentences(doc.prose_lower)
        refusing = sum(1 for s in sentences if _REFUSAL_RE.search(s))
        dominant = refusing * 2 >= max(1, len(sentences))
        if dominant or (at_start and doc.words <= _REFUSAL_SHORT_WORDS):
            return _REFUSAL_STRONG, f"refuses to answer: {_quote(phrases)}"
        if at_start and doc.words <= _REFUSAL_MEDIUM_WORDS:
            return _REFUSAL_MOSTLY, f"opens with a refusal: {_quote(phrases)}"
        if at_start:
            return _REFUSAL_PARTIAL, f"opens with a refusal/disclaimer: {_quote(phrases)}"
        return 1.0, None

    def _check_hedging(self, doc: Doc) -> tuple[float, str | None]:
        strong: list[str] = []
        mild: list[str] = []
        for m in _HEDGE_RE.finditer(doc.prose_lower):
            phrase = doc.original(doc.prose_lower, m.start(), m.end())
            (strong if m.group("strong") else mild).append(phrase)
        if not strong and not mild:
            return 1.0, None
        n_sentences = max(1, len(doc.prose_sentences))
        weighted = _HEDGE_STRONG_WEIGHT * len(strong) + _HEDGE_MILD_WEIGHT * len(mild)
        density = weighted / n_sentences
        score = 1.0 / (1.0 + (density / self.preset.hedge_tolerance) ** 2)
        score *= _HEDGE_STRONG_FACTOR ** len(strong)
        found = list(dict.fromkeys(strong + mild))
        n_hedges = len(strong) + len(mild)
        return score, f"{_quote(found)} ({n_hedges} in {n_sentences} sentences)"

    def _check_length(self, query: str, doc: Doc) -> tuple[float, str | None]:
        need, why = expected_words(query, self.preset)
        if doc.words >= need:
            return 1.0, None
        return math.sqrt(doc.words / need), f"{doc.words} words, expected ~{need}+ ({why})"

    def _check_repetition(self, doc: Doc) -> tuple[float, str | None]:
        preset = self.preset
        line_score, line_reason = 1.0, None
        best_unit, best_n = "", 0
        # Lines (outside code fences) and sentences are counted separately so a line
        # that is also a sentence is not counted twice.
        for units in (doc.prose.split("\n"), doc.prose_sentences):
            # at least three words; markdown table rows legitimately repeat
            counts = Counter(
                n for n in map(_norm, units) if n.count(" ") >= 2 and not n.startswith("|")
            )
            if counts:
                unit, n = counts.most_common(1)[0]
                if n > best_n:
                    best_unit, best_n = unit, n
        if best_n >= preset.max_line_repeats:
            line_score = max(0.0, 1.0 - 0.25 * (best_n - 1))
            line_reason = f"'{_clip(best_unit)}' repeated {best_n} times"

        ngram_score, ngram_reason = 1.0, None
        lower = doc.lower
        if "|" in lower:  # markdown table rows legitimately repeat cells
            lower = "\n".join(ln for ln in lower.split("\n") if not ln.lstrip().startswith("|"))
        tokens = lower.split()
        total = len(tokens) - 3
        if total >= 20:
            unique = len(set(zip(tokens, tokens[1:], tokens[2:], tokens[3:], strict=False)))
            ratio = unique / total
            lo, hi = preset.ngram_unique_floor, preset.ngram_unique_ok
            if ratio < hi:
                ngram_score = max(0.0, (ratio - lo) / (hi - lo))
                ngram_reason = f"only {ratio:.0%} of 4-word phrases are unique"

        if line_score <= ngram_score:
            return line_score, line_reason
        return ngram_score, ngram_reason
