"""The shipped domain head: it loads, it is small, and a damaged or missing file is one
clear error rather than a wrong answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cascadeflow_cli.errors import ModelFileError
from cascadeflow_cli.routing.domain import DOMAINS
from cascadeflow_cli.routing.head import ENV_VAR, DomainHead, head_path


def test_the_shipped_head_is_small_and_loads() -> None:
    # the issue: "a few hundred KB at most" (int8 examples; 511 KB with the 255 general chat rows voting)
    assert head_path().stat().st_size < 600_000
    head = DomainHead.load()
    assert head.coef.shape == (len(DOMAINS), 384) and 0.05 < head.temperature < 20
    probabilities = head.probabilities(np.ones((2, 384), dtype=np.float32) / np.sqrt(384))
    assert np.allclose(probabilities.sum(axis=1), 1.0)


def test_a_saved_head_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    head = DomainHead(rng.normal(size=(6, 384)).astype(np.float32), np.zeros(6, np.float32), 0.7, 0.5)
    head.save(tmp_path / "h.npz")
    loaded = DomainHead.load(tmp_path / "h.npz")
    assert np.allclose(loaded.coef, head.coef, atol=1e-2) and loaded.rules_weight == 0.5


@pytest.mark.parametrize("content", [None, b"", b"not a zip file", b"PK\x03\x04broken"])
def test_a_missing_or_damaged_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              content: bytes | None) -> None:
    path = tmp_path / "head.npz"
    if content is not None:
        path.write_bytes(content)
    monkeypatch.setenv(ENV_VAR, str(path))
    with pytest.raises(ModelFileError, match=str(path)) as caught:
        DomainHead.load()
    assert "\n" not in str(caught.value)


def test_a_head_of_another_version_is_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "h.npz", coef=np.zeros((6, 384)), bias=np.zeros(6), meta=np.array('{"version": 99}'))
    with pytest.raises(ModelFileError, match="version 99"):
        DomainHead.load(tmp_path / "h.npz")


def test_every_setting_survives_a_save(tmp_path: Path) -> None:
    head = DomainHead(np.zeros((6, 384), np.float32), np.zeros(6, np.float32), 0.6, 0.25, 2.0, 0.95,
                      general_below=0.35)
    head.save(tmp_path / "h.npz")
    loaded = DomainHead.load(tmp_path / "h.npz")
    settings = (loaded.temperature, loaded.rules_weight, loaded.rules_temperature, loaded.rules_sure,
                loaded.general_below)
    assert settings == pytest.approx((0.6, 0.25, 2.0, 0.95, 0.35))


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
def test_a_head_with_a_general_below_outside_0_1_is_refused(tmp_path: Path, value: float) -> None:
    head = DomainHead(np.zeros((6, 384), np.float32), np.zeros(6, np.float32), general_below=value)
    head.save(tmp_path / "h.npz")
    with pytest.raises(ModelFileError, match="general_below"):
        DomainHead.load(tmp_path / "h.npz")


def test_the_nearest_examples_vote_survives_a_save_and_votes_for_their_domain(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    examples = rng.normal(size=(40, 384))
    examples /= np.linalg.norm(examples, axis=1, keepdims=True)
    labels = np.arange(40) % len(DOMAINS)
    head = DomainHead(np.zeros((6, 384), np.float32), np.zeros(6, np.float32), knn_weight=1.5,
                      examples=examples, example_labels=labels, example_weights=np.ones(40))
    head.save(tmp_path / "h.npz")
    loaded = DomainHead.load(tmp_path / "h.npz")
    assert loaded.knn_weight == 1.5 and loaded.examples is not None and loaded.examples.shape == (40, 384)
    votes = loaded.knn_log_probabilities(examples[:6])  # each its own nearest example
    assert list(votes.argmax(axis=1)) == list(labels[:6])
    assert loaded.combined(examples[3], {})[DOMAINS[3]] > 0.5  # the vote alone decides a blank head


@pytest.mark.parametrize(("labels", "weights"), [
    ([0, 9, 1], [1.0, 1.0, 1.0]),  # a label past the domains
    ([0, 2, 1], [1.0, float("nan"), 1.0]),  # every confidence was NaN, exit 0
    ([0, 2, 1], [1.0, -1.0, 1.0]),
    ([0, 2, 1], None),  # examples of floats, one NaN
])
def test_damaged_nearest_examples_are_refused(tmp_path: Path, labels: list[int],
                                              weights: list[float] | None) -> None:
    import json

    from cascadeflow_cli.routing.head import EMBEDDING_MODEL

    meta = json.dumps({"version": 1, "domains": list(DOMAINS), "embedding_model": EMBEDDING_MODEL,
                       "knn_weight": 1.0})
    examples = np.zeros((3, 384), np.int8 if weights else np.float32)
    if weights is None:
        examples[1, 5], weights = np.nan, [1.0, 1.0, 1.0]
    np.savez(tmp_path / "h.npz", coef=np.zeros((6, 384)), bias=np.zeros(6), meta=np.array(meta),
             examples=examples, example_labels=np.array(labels, np.int8),
             example_weights=np.array(weights, np.float16))
    with pytest.raises(ModelFileError, match="nearest examples"):
        DomainHead.load(tmp_path / "h.npz")


def test_the_rules_evidence_is_weighed_and_survives_a_save(tmp_path: Path) -> None:
    from cascadeflow_cli.routing.head import rule_feature_names

    names = rule_feature_names()
    assert "shape:code:stack trace" in names and "score:general" in names
    rule_coef = np.zeros((len(DOMAINS), len(names)), np.float32)
    rule_coef[DOMAINS.index("code"), names.index("shape:code:stack trace")] = 8.0  # a trace means code
    head = DomainHead(np.zeros((6, 384), np.float32), np.zeros(6, np.float32), rule_coef=rule_coef,
                      rule_names=names)
    head.save(tmp_path / "h.npz")
    loaded = DomainHead.load(tmp_path / "h.npz")
    assert loaded.rule_names == names
    vector = np.ones(384, np.float32) / np.sqrt(384)
    seen = loaded.combined(vector, {"code": 5.0}, {"code": ("stack trace",)})
    unseen = loaded.combined(vector, {"code": 5.0}, {"code": ("url",)})
    assert seen["code"] > 0.99 and abs(unseen["code"] - 1 / 6) < 0.01


def test_damaged_rule_features_are_refused(tmp_path: Path) -> None:
    import json

    from cascadeflow_cli.routing.head import EMBEDDING_MODEL

    meta = json.dumps({"version": 1, "domains": list(DOMAINS), "embedding_model": EMBEDDING_MODEL,
                       "rule_names": ["score:code"]})
    np.savez(tmp_path / "h.npz", coef=np.zeros((6, 384)), bias=np.zeros(6), meta=np.array(meta),
             rule_coef=np.zeros((6, 3)))
    with pytest.raises(ModelFileError, match="rule features"):
        DomainHead.load(tmp_path / "h.npz")


def test_a_head_trained_on_the_float_models_vectors_is_refused(tmp_path: Path) -> None:
    """Heads made before the int8 products (routing.int8_matmul) saw other vectors."""
    import json

    meta = json.dumps({"version": 1, "domains": list(DOMAINS), "embedding_model": "minilm-int8-1.0.0"})
    np.savez(tmp_path / "h.npz", coef=np.zeros((6, 384)), bias=np.zeros(6), meta=np.array(meta))
    with pytest.raises(ModelFileError, match="another embedding model"):
        DomainHead.load(tmp_path / "h.npz")
