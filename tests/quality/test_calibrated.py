"""The calibrated model: fit on a small synthetic fixture, thresholds for a target quality,
and a calibration file that is checked on load."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cascadeflow_cli.errors import ConfigError
from cascadeflow_cli.quality.calibrate import (
    CalibrationDataError,
    Prices,
    calibrate_rows,
    choose_threshold,
    row_features,
)
from cascadeflow_cli.quality.calibrated import CalibratedValidator, load_calibration, parse_calibration
from cascadeflow_cli.quality.model import auroc

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "calibration_sample.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def report():  # type: ignore[no-untyped-def]
    return calibrate_rows(ROWS, prices=Prices(0.6, 0.6, 10, 30))


def test_fit_separates_good_from_bad_drafts(report) -> None:  # type: ignore[no-untyped-def]
    assert report.rows == len(ROWS)
    assert report.auroc > 0.8  # the fixture's bad drafts carry real signs (see its generator)
    assert 0.0 <= report.threshold <= 1.0
    assert report.expected_quality >= 0.95 - 1e-9  # out of fold, at the default target
    assert report.expected_savings is not None and 0.0 < report.expected_savings < 1.0
    assert sum(b.n for b in report.reliability) == len(ROWS)
    for b in report.reliability:  # predicted probabilities fall in their own bin
        lo, hi = map(float, b.bin.split("-"))
        assert lo <= b.predicted <= hi


def test_scores_are_probabilities_that_rank(report) -> None:  # type: ignore[no-untyped-def]
    cal = report.calibration
    p = [cal.probability(row_features(r)) for r in ROWS]
    assert all(0.0 < x < 1.0 for x in p)
    assert auroc([r["correct"] for r in ROWS], p) > 0.85  # in-sample, so above the CV figure


def test_file_round_trip_gives_the_same_decisions(report, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "calibration.json"
    report.calibration.write(path)
    loaded = load_calibration(path)
    a, b = CalibratedValidator(report.calibration), CalibratedValidator(loaded)
    for row in ROWS[:20]:
        ra = a.validate(row["query"], row["response"], domain=row.get("domain"))
        rb = b.validate(row["query"], row["response"], domain=row.get("domain"))
        assert (ra.score, ra.passed, ra.threshold) == (rb.score, rb.passed, rb.threshold)
        assert ra.calibrated and ra.probability == ra.score


def test_a_stricter_target_never_accepts_more(report) -> None:  # type: ignore[no-untyped-def]
    cal = report.calibration
    thresholds = [cal.for_target(t).threshold for t in (0.85, 0.9, 0.95, 0.99, 1.0)]
    assert thresholds == sorted(thresholds)
    assert cal.for_target(0.95) is cal


def test_threshold_keeps_the_quality_bound() -> None:
    rng = np.random.default_rng(3)
    good = (rng.random(400) < 0.6).astype(float)
    p = np.clip(good * 0.3 + rng.random(400) * 0.7, 0, 1)
    verifier = np.ones(400)
    t = choose_threshold(p, good, verifier, 0.9)
    accept = p >= t
    assert np.where(accept, good, verifier).mean() >= 0.9  # the bound holds in sample
    assert accept.any()
    # drafts always wrong, the verifier always right, no quality to give away: accept nothing
    assert choose_threshold(p, np.zeros(400), verifier, 1.0) == math.inf
    # at 95% some 5% may be given away, but not more
    t95 = choose_threshold(p, np.zeros(400), verifier, 0.95)
    assert 0 < (p >= t95).mean() <= 0.05
    # a wider margin never accepts more
    assert choose_threshold(p, good, verifier, 0.9, margin=3.0) >= t


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (ROWS[:20], "at least 30"),
        (ROWS[:1], "^only 1 labelled row: "),  # it read "only 1 labelled rows"
        ([{**r, "correct": True} for r in ROWS], "at least 5 of each"),
        ([{**ROWS[0], "correct": "yes"}, *ROWS[1:]], "true or false"),
        ([ROWS[0], *ROWS[:40]], "duplicate id"),
        ([{**ROWS[0], "correct": None}, *ROWS[1:]], "missing 'correct'"),
    ],
)
def test_rows_that_cannot_be_calibrated_on(rows, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CalibrationDataError, match=message):
        calibrate_rows(rows)


def _valid(report) -> dict:  # type: ignore[no-untyped-def]
    return report.calibration.to_json()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(version=99), "version 99"),
        (lambda d: d.pop("format"), "not a calibration file"),
        (lambda d: d.update(weights=d["weights"][:-1]), "'weights' must be a list of"),
        (lambda d: d.update(mean="0"), "'mean' must be a list"),
        (lambda d: d["scale"].__setitem__(0, 0.0), "scales must be > 0"),
        (lambda d: d["weights"].__setitem__(2, float("nan")), "not a finite number"),
        (lambda d: d.update(threshold=1.5), "'threshold' must be within"),
        (lambda d: d.update(threshold="0.5"), "'threshold' must be a finite number"),
        (lambda d: d["features"].__setitem__(0, "vibes"), "unknown feature 'vibes'"),
        (lambda d: d.update(thresholds_by_domain={"math": True}), "'math' must be a finite number"),
        (lambda d: d.update(bias=None), "'bias' must be a finite number"),
    ],
)
def test_hand_edited_nonsense_is_one_clear_error(report, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    data = _valid(report)
    edit(data)
    with pytest.raises(ConfigError, match=message):
        parse_calibration(json.loads(json.dumps(data)), "cal.json")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_calibration(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="is a directory"):
        load_calibration(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": ', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.json:1: not valid JSON"):
        load_calibration(bad)
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_calibration(binary)


class _LetterEmbedder:
    """A small deterministic embedder (letter counts), counting its calls: stands in for
    the [semantic] extra's MiniLM, which needs the extra's model files."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        return [[float(t.lower().count(c)) for c in "abcdefghijklmnopqrstuvwxyz0123456789"] for t in texts]


def test_a_calibration_fitted_with_similarity_measures_it_for_every_draft() -> None:
    from cascadeflow_cli.quality.live_signals import embedding_similarity

    embed = _LetterEmbedder()
    rows = [{**r, "similarity": embedding_similarity(embed, r["query"], r["response"])} for r in ROWS]
    cal = calibrate_rows(rows).calibration
    assert cal.needs_similarity
    assert parse_calibration(json.loads(json.dumps(cal.to_json())), "cal.json").needs_similarity
    live = _LetterEmbedder()
    validator = CalibratedValidator(cal, embed=live)
    for row in rows[:10]:
        got = validator.validate(row["query"], row["response"], domain=row.get("domain"))
        # the same features `cascade calibrate` / `quality check` computed for the row
        assert got.probability == round(cal.probability(row_features(row)), 4)
    assert live.calls == 10
    # a similarity the caller already measured is used as given, not measured again
    given = validator.validate(rows[0]["query"], rows[0]["response"], similarity=rows[0]["similarity"])
    assert live.calls == 10 and given.probability == round(cal.probability(row_features(rows[0])), 4)


def test_a_calibration_fitted_with_similarity_refuses_to_score_without_an_embedder() -> None:
    embed = _LetterEmbedder()
    rows = [{**r, "similarity": embedding_similarity_of(embed, r)} for r in ROWS]
    with pytest.raises(ConfigError, match="similarity signal"):
        CalibratedValidator(calibrate_rows(rows).calibration)


def embedding_similarity_of(embed: _LetterEmbedder, row: dict) -> float:
    from cascadeflow_cli.quality.live_signals import embedding_similarity

    return embedding_similarity(embed, row["query"], row["response"])


def test_a_calibration_without_similarity_never_embeds(report) -> None:  # type: ignore[no-untyped-def]
    assert not report.calibration.needs_similarity
    embed = _LetterEmbedder()
    validator = CalibratedValidator(report.calibration, embed=embed)
    validator.validate(ROWS[0]["query"], ROWS[0]["response"])
    assert embed.calls == 0
