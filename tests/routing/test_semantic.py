"""SemanticDomainDetector with the real offline model (the [semantic] extra, installed
with [dev]): nothing downloaded, rules first, the model where the rules are unsure."""

from __future__ import annotations

from pathlib import Path

import pytest

from cascadeflow_cli.routing.semantic import MODEL_FILES, SemanticDomainDetector, model_dir


@pytest.fixture(scope="module")
def detector() -> SemanticDomainDetector:
    return SemanticDomainDetector()


def test_the_model_directory_is_made_from_shipped_and_installed_files(tmp_path: Path) -> None:
    directory = model_dir()
    assert str(directory).startswith(str(tmp_path))  # the user cache dir, under the test's HOME
    for name in (*MODEL_FILES, "model.onnx"):
        assert (directory / name).stat().st_size > 0
    assert '"model_max_length": 256' in (directory / "tokenizer_config.json").read_text()


@pytest.mark.parametrize(("query", "domain"), [
    ("How do I get rid of a persistent cough?", "medical"),
    ("Can my neighbour build a fence on my side of the line?", "legal"),
    ("Should I refinance now?", "finance"),
    ("Why is my app so slow to start?", "code"),
    ("Who won the football world cup in 1998?", "general"),
])
def test_the_model_decides_where_the_rules_cannot(detector: SemanticDomainDetector, query: str,
                                                  domain: str) -> None:
    assert detector.rules.detect(query).domain == "general"  # no rule fired
    result = detector.detect(query)
    assert (result.domain, result.method) == (domain, "semantic")
    assert 0.5 <= result.confidence <= 1.0


def test_confident_rules_are_not_second_guessed(detector: SemanticDomainDetector) -> None:
    result = detector.detect("The plaintiff sued the defendant for breach of contract.")
    assert (result.domain, result.method) == ("legal", "rules")


def test_empty_query_is_general(detector: SemanticDomainDetector) -> None:
    assert detector.detect("   ").domain == "general"


def test_example_embeddings_are_kept_and_a_damaged_file_is_remade(detector: SemanticDomainDetector) -> None:
    import numpy as np

    from cascadeflow_cli.routing.semantic import prototype_vectors

    vectors = prototype_vectors(detector.embedder)  # kept next to the model the embedder loaded
    [kept] = detector.embedder.directory.glob("prototypes-*.npy")
    assert np.allclose(np.load(kept), vectors) and np.allclose(vectors, detector.examples, atol=1e-5)
    kept.write_bytes(b"not an array")
    assert np.allclose(prototype_vectors(detector.embedder), vectors)
    assert np.allclose(np.load(kept), vectors)
