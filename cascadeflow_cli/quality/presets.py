"""Quality presets: named bundles of acceptance threshold and per-check tolerances.

A preset only holds numbers; the rules that use them live in :mod:`.validator`.
Three presets are provided, from lenient to demanding:

* ``fast``     -- accept most drafts; only clearly broken ones escalate (threshold 0.5).
* ``balanced`` -- the default (threshold 0.7).
* ``strict``   -- escalate on mild hedging or thin answers too (threshold 0.8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

__all__ = ["QualityPreset"]


def _check_unit(name: str, value: float) -> None:
    """Raise ``ValueError`` unless ``value`` is a real number within [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be within [0, 1], got {value!r}")


@dataclass(frozen=True)
class QualityPreset:
    """Acceptance threshold plus the tolerances each rule-based check uses.

    Attributes:
        name: preset name (``"fast"``, ``"balanced"``, ``"strict"`` or a custom label).
        threshold: default acceptance threshold; a response passes when its score is
            ``>= threshold``.
        hedge_tolerance: weighted hedge density (hedges per sentence; strong hedges
            such as "I'm not sure" weigh 1.0, mild ones such as "might" 0.5) at which
            the hedging sub-score falls to 0.5. Lower = less tolerant.
        min_words_elaborate: words expected, at least, when the question asks to
            explain / describe / compare / write / list / "how do" / "why" ...
        long_query_words: a question at least this many words long expects more than
            a few words back even without an "explain"-style verb.
        long_query_ratio: for such long questions, expected answer words =
            ``long_query_ratio * question words`` (capped at ``min_words_elaborate``).
        ngram_unique_ok: share of unique word 4-grams at or above which the repetition
            sub-score is 1.0 (normal prose is ~0.9+, step-by-step math ~0.7+).
        ngram_unique_floor: share of unique word 4-grams at or below which the
            repetition sub-score is 0.0 (a looping model).
        max_line_repeats: a non-trivial line or sentence occurring this many times or
            more is treated as degenerate looping.
    """

    name: str
    threshold: float
    hedge_tolerance: float = 0.8
    min_words_elaborate: int = 15
    long_query_words: int = 30
    long_query_ratio: float = 0.15
    ngram_unique_ok: float = 0.6
    ngram_unique_floor: float = 0.2
    max_line_repeats: int = 3

    NAMES: ClassVar[tuple[str, ...]] = ("fast", "balanced", "strict")

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("preset name must be a non-empty string")
        _check_unit("threshold", self.threshold)
        if not self.hedge_tolerance > 0:
            raise ValueError(f"hedge_tolerance must be > 0, got {self.hedge_tolerance!r}")
        if self.min_words_elaborate < 1:
            raise ValueError("min_words_elaborate must be >= 1")
        if self.long_query_words < 1:
            raise ValueError("long_query_words must be >= 1")
        if self.long_query_ratio < 0:
            raise ValueError("long_query_ratio must be >= 0")
        _check_unit("ngram_unique_ok", self.ngram_unique_ok)
        _check_unit("ngram_unique_floor", self.ngram_unique_floor)
        if self.ngram_unique_floor >= self.ngram_unique_ok:
            raise ValueError("ngram_unique_floor must be below ngram_unique_ok")
        if self.max_line_repeats < 2:
            raise ValueError("max_line_repeats must be >= 2")

    @classmethod
    def fast(cls) -> QualityPreset:
        """Lenient: only empty, refused, cut-off, looping or very thin answers fail."""
        return cls(
            name="fast",
            threshold=0.5,
            hedge_tolerance=1.2,
            min_words_elaborate=8,
            long_query_words=40,
            long_query_ratio=0.1,
            ngram_unique_ok=0.5,
            ngram_unique_floor=0.15,
            max_line_repeats=4,
        )

    @classmethod
    def balanced(cls) -> QualityPreset:
        """The default trade-off between cost (accepting drafts) and quality."""
        return cls(name="balanced", threshold=0.7)

    @classmethod
    def strict(cls) -> QualityPreset:
        """Demanding: mild hedging or a thin answer is enough to escalate."""
        return cls(
            name="strict",
            threshold=0.8,
            hedge_tolerance=0.5,
            min_words_elaborate=25,
            long_query_words=25,
            long_query_ratio=0.25,
            ngram_unique_ok=0.65,
            ngram_unique_floor=0.25,
            max_line_repeats=3,
        )

    @classmethod
    def named(cls, name: str) -> QualityPreset:
        """Return the built-in preset called ``name`` (case-insensitive).

        Raises:
            ValueError: if ``name`` is not one of ``fast``, ``balanced``, ``strict``.
        """
        key = name.strip().lower() if isinstance(name, str) else None
        if key == "fast":
            return cls.fast()
        if key == "balanced":
            return cls.balanced()
        if key == "strict":
            return cls.strict()
        raise ValueError(
            f"unknown quality preset {name!r}; expected one of: {', '.join(cls.NAMES)}"
        )
