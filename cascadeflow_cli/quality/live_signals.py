"""Live signals as quality features (issue 9): token log-probabilities summarised the way
the token-level-uncertainty literature recommends (mean, minimum, low quantiles), the
agreement share of N sampled answers, and the query-answer embedding similarity. Pure; the
names are the calibrated model's ``LIVE_SIGNALS`` keywords (quality/features.py), so a live
draft, a ledger row and a calibration file row all carry the same keys."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

LOGPROB_SIGNALS = ("logprob_mean", "logprob_min", "logprob_p10", "logprob_p25")


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of a non-empty sequence (numpy's default method)."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def live_signals(logprobs: Sequence[float] | None = None, agreement: float | None = None) -> dict[str, float]:
    """The features for what was measured; a signal that was not measured is left out
    (the model then uses its "missing" indicator)."""
    out: dict[str, float] = {}
    values = [v for v in (logprobs or ()) if math.isfinite(v)]
    if values:
        out["logprob_mean"] = round(sum(values) / len(values), 6)
        out["logprob_min"] = round(min(values), 6)
        out["logprob_p10"] = round(quantile(values, 0.10), 6)
        out["logprob_p25"] = round(quantile(values, 0.25), 6)
    if agreement is not None and math.isfinite(agreement):
        out["agreement"] = float(agreement)
    return out


def cosine(u: Sequence[float], v: Sequence[float]) -> float:
    """Cosine of two vectors; 0.0 when either is zero."""
    dot = sum(x * y for x, y in zip(u, v, strict=True))
    nu, nv = math.sqrt(sum(x * x for x in u)), math.sqrt(sum(y * y for y in v))
    return dot / (nu * nv) if nu and nv else 0.0


# The query-answer ``similarity`` signal reads the first SIMILARITY_CHARS of each (about 45
# tokens): the model's cost grows faster than the text (1.3 / 2.3 / 6.6 / 14.9 ms of CPU for
# 2 / 16 / 64 / 128 tokens, one text a call), and at its full 128 tokens the pair took
# 15-17 ms a draft against the check's 15 ms budget. Cut, 9.4-11.2 ms a draft at load 2.5;
# the +semantic AUROC over seeds 0-4 is 0.807 on GSM8K either way, 0.669 (cut) vs 0.673
# (seed 0, whole) on MBPP (bench/quality_frontier.py --semantic).
SIMILARITY_CHARS = 192


def query_answer_similarity(embed: Callable[[list[str]], Any], query: str, answer: str) -> float:
    """The ``similarity`` live signal: :func:`embedding_similarity` of the query's and the
    answer's first SIMILARITY_CHARS. The one definition the live check, `quality check`
    and the benches share, so a replayed draft gets the same value."""
    return embedding_similarity(embed, query[:SIMILARITY_CHARS], answer[:SIMILARITY_CHARS])


def embedding_similarity(embed: Callable[[list[str]], Any], a: str, b: str) -> float:
    """Cosine of the embeddings of ``a`` and ``b``, with ``embed`` the caller's embedder
    (texts -> rows of vectors, e.g. the ``[semantic]`` extra's ``shared_embedder().embed``):
    the ``similarity`` signal for a query and its answer, and the agreement of two prose
    answers (:mod:`.agreement`)."""
    va, vb = ([float(x) for x in row] for row in embed([a, b]))
    return cosine(va, vb)
