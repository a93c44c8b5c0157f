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
  gives that the answer never uses, operands that come from nowhere, every stated step
  recomputed (:mod:`.arithmetic`: how many are wrong, their share, how early the first
  is, running totals written as equations), factors the question states in words that no
  calculation applies, calculator annotations whose result is copied wrong,
  how many distinct final answers the text offers, self-correction markers;
* code: Python blocks that do not parse (``ast.parse`` only: model code is never run),
  unbalanced fences, a function that returns nothing, the function name a test in the
  query expects vs the ones defined, a call of a function the code never defines;
* opt-in, code execution (:mod:`.code_exec`): the share of the outputs the answer claims
  for its own examples that its code, run in a sandbox, does not produce;
* the query's domain and complexity (:mod:`cascadeflow_cli.routing`);
* live signals that may be absent (token log-probabilities, agreement of sampled final
  answers, query-answer embedding similarity): each has a ``missing_*`` indicator and a
  neutral value when absent, so a model fitted without them still scores with them off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from cascadeflow_cli.routing.complexity import complexity_of
from cascadeflow_cli.routing.domain import DOMAINS, MIN_CONFIDENCE, DomainDetector

from .code_exec import ExecResult
from .code_features import code_features
from .math_features import final_answer, math_features
from .validator import CHECK_NAMES, QualityResult, QualityValidator

__all__ = [
    "EXEC_FEATURES",
    "EXEC_REPLACES",
    "FEATURE_NAMES",
    "FEATURE_VERSION",
    "LIVE_SIGNALS",
    "draft_features",
    "feature_domain",
    "feature_vector",
    "final_answer",
]

# The meaning of the feature code. Bump it whenever any feature's value can change for the
# same draft (a new regex, a fixed bug, a new family): calibration files record it and one
# fitted under another version is refused at load. tests/quality/test_feature_version.py
# pins a fingerprint of the features on fixed drafts, so a change that forgets the bump
# fails there; then refit the demo's calibration (python bench/demo_calibration.py).
FEATURE_VERSION = 10

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

# Features that exist only when the draft's code was run (opt-in, :mod:`.code_exec`): a
# calibration lists them iff it was fitted with execution, and then needs it to score.
EXEC_FEATURES: tuple[str, ...] = ("exec_failed_share",)
# Static guesses at what running the code observes: a calibration fitted with execution
# leaves them out (a call of an undefined name raises there and fails the claims after
# it). MBPP dev, seeds 0-19: code_calls_undefined lifts the default model's AUROC 0.671 ->
# 0.674 (17 of 20 seeds), but beside exec_failed_share it only adds noise (savings 36.1% ->
# 35.4%, seeds below 35%: 4 -> 8).
EXEC_REPLACES: tuple[str, ...] = ("code_calls_undefined",)

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
    "steps_checked",
    "steps_wrong",
    "steps_wrong_share",
    "steps_wrong_any",
    "steps_first_wrong_at",
    "steps_running_totals",
    "annotation_copy_errors",
    "final_unused_query_numbers",
    "final_unused_share",
    "dangling_results",
    "query_multipliers_unused",
    "query_numbers_reused",
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
    "code_calls_undefined",
    *EXEC_FEATURES,
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
# --------------------------------------------------------------------------- the vector


def draft_features(
    query: str,
    response: str | None,
    *,
    finish_reason: str | None = None,
    domain: str | None = None,
    rules: QualityResult | None = None,
    execution: ExecResult | None = None,
    **live: float | None,
) -> dict[str, float]:
    """Every feature of :data:`FEATURE_NAMES` for one draft, as a name -> float mapping.

    ``domain``: the query's domain when the caller knows it (else detected from the
    query). ``rules``: the rule validator's result if already computed (else computed
    here with the balanced preset). ``execution``: what running the draft's code showed
    (:func:`.code_exec.run_program`; None: not run, the ``exec_*`` features stay 0).
    ``live``: optional signals of :data:`LIVE_SIGNALS` (``logprob_mean=-0.2``,
    ``agreement=0.8`` ...); unknown names raise ``TypeError``.
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

    if detected != "code":
        # Numbers a coding task mentions are not quantities to compute with: for code the
        # math family is noise the model has to learn to ignore (cross-validated on MBPP:
        # AUROC 0.63 -> 0.67 without it), so it stays at 0 there.
        math_features(query, text, out)
    if "```" in text or "~~~" in text or "def " in text or detected == "code":
        code_features(query, text, out)
    if execution is not None:
        out["exec_failed_share"] = execution.failed_share

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
