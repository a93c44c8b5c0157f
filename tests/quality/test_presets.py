"""QualityPreset: built-in presets, lookup by name, and input validation."""

from __future__ import annotations

import dataclasses
import math

import pytest

from cascadeflow_cli.quality import QualityPreset


def test_builtin_presets_have_expected_names_and_thresholds() -> None:
    assert (QualityPreset.fast().name, QualityPreset.fast().threshold) == ("fast", 0.5)
    assert (QualityPreset.balanced().name, QualityPreset.balanced().threshold) == ("balanced", 0.7)
    assert (QualityPreset.strict().name, QualityPreset.strict().threshold) == ("strict", 0.8)


def test_presets_are_ordered_from_lenient_to_strict() -> None:
    fast, balanced, strict = QualityPreset.fast(), QualityPreset.balanced(), QualityPreset.strict()
    assert fast.threshold < balanced.threshold < strict.threshold
    assert fast.hedge_tolerance > balanced.hedge_tolerance > strict.hedge_tolerance
    assert fast.min_words_elaborate < balanced.min_words_elaborate < strict.min_words_elaborate
    assert fast.long_query_ratio < balanced.long_query_ratio < strict.long_query_ratio
    assert fast.ngram_unique_ok < balanced.ngram_unique_ok < strict.ngram_unique_ok
    assert fast.max_line_repeats >= balanced.max_line_repeats >= strict.max_line_repeats


@pytest.mark.parametrize("name", ["fast", "balanced", "strict", " Strict ", "BALANCED"])
def test_named_returns_the_builtin_preset(name: str) -> None:
    key = name.strip().lower()
    assert QualityPreset.named(name) == getattr(QualityPreset, key)()


@pytest.mark.parametrize("name", ["", "medium", "balanced2", "fastest"])
def test_named_rejects_unknown_names_with_the_valid_choices(name: str) -> None:
    with pytest.raises(ValueError, match=r"unknown quality preset.*fast, balanced, strict"):
        QualityPreset.named(name)


def test_named_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="unknown quality preset"):
        QualityPreset.named(None)  # type: ignore[arg-type]


def test_presets_are_immutable() -> None:
    preset = QualityPreset.balanced()
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset.threshold = 0.1  # type: ignore[misc]


@pytest.mark.parametrize("threshold", [-0.01, 1.01, math.nan, math.inf])
def test_threshold_outside_unit_interval_is_rejected(threshold: float) -> None:
    with pytest.raises(ValueError, match="threshold"):
        QualityPreset(name="custom", threshold=threshold)


@pytest.mark.parametrize("threshold", [0.0, 1.0, 0.65])
def test_threshold_bounds_are_inclusive(threshold: float) -> None:
    assert QualityPreset(name="custom", threshold=threshold).threshold == threshold


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": ""},
        {"hedge_tolerance": 0.0},
        {"min_words_elaborate": 0},
        {"long_query_words": 0},
        {"long_query_ratio": -0.1},
        {"ngram_unique_ok": 0.2, "ngram_unique_floor": 0.3},
        {"ngram_unique_ok": 1.5},
        {"max_line_repeats": 1},
    ],
)
def test_invalid_tolerances_are_rejected(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"name": "custom", "threshold": 0.7, **kwargs}
    with pytest.raises(ValueError):
        QualityPreset(**args)  # type: ignore[arg-type]
