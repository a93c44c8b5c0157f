"""engine.validators: the calibrated check the live cascade and `quality check` build
from a calibration file, with the [semantic] embedder when the file was fitted with the
query-answer similarity (the real offline MiniLM: [dev] brings the extra)."""

from __future__ import annotations

import json
from pathlib import Path

from cascadeflow_cli.config.settings import QualityConfig
from cascadeflow_cli.engine.validators import calibrated_validator
from cascadeflow_cli.quality.calibrate import calibrate_rows, row_features
from cascadeflow_cli.quality.live_signals import embedding_similarity
from cascadeflow_cli.routing.semantic import shared_embedder

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "calibration_sample.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]


def test_a_file_fitted_with_similarity_is_scored_with_the_same_similarity(tmp_path: Path) -> None:
    embed = shared_embedder().embed
    rows = [{**r, "similarity": embedding_similarity(embed, r["query"], r["response"])} for r in ROWS]
    path = tmp_path / "calibration.json"
    calibrate_rows(rows).calibration.write(path)
    validator = calibrated_validator(path, QualityConfig())
    assert validator.calibration.needs_similarity and validator.embed is not None
    for row in rows[:5]:
        got = validator.validate(row["query"], row["response"])
        assert got.probability == round(validator.calibration.probability(row_features(row)), 4)


def test_a_file_fitted_without_it_loads_no_embedder(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    calibrate_rows(ROWS).calibration.write(path)
    validator = calibrated_validator(path, QualityConfig(), threshold=0.5)
    assert validator.embed is None and validator.threshold == 0.5
