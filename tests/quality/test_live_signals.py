"""The query-answer similarity signal with the real offline model (the [semantic] extra,
installed with [dev]), as the bench's ``+semantic`` model and the live cascade use it."""

from __future__ import annotations

import pytest

from cascadeflow_cli.quality.features import draft_features
from cascadeflow_cli.quality.live_signals import (
    SIMILARITY_CHARS,
    cosine,
    embedding_similarity,
    query_answer_similarity,
)
from cascadeflow_cli.routing.semantic import shared_embedder

QUERY = "Write a Python function that returns the largest of three numbers."
ON_TOPIC = "def largest(a, b, c):\n    return max(a, b, c)\n\nIt returns the greatest of the three numbers."
OFF_TOPIC = "The French Revolution began in 1789 with the storming of the Bastille."


@pytest.fixture(scope="module")
def embed():
    return shared_embedder().embed


def test_an_answer_on_the_query_s_topic_is_closer_than_one_off_it(embed) -> None:
    near = embedding_similarity(embed, QUERY, ON_TOPIC)
    far = embedding_similarity(embed, QUERY, OFF_TOPIC)
    assert -1.0 <= far < near <= 1.0
    assert embedding_similarity(embed, QUERY, QUERY) == pytest.approx(1.0, abs=1e-5)


def test_the_similarity_is_a_feature_with_its_missing_indicator_cleared(embed) -> None:
    value = embedding_similarity(embed, QUERY, ON_TOPIC)
    features = draft_features(QUERY, ON_TOPIC, similarity=value)
    assert features["similarity"] == value and features["missing_similarity"] == 0.0


def test_the_signal_reads_the_head_of_a_long_answer_only(embed) -> None:
    """What the model is given is the first SIMILARITY_CHARS of each text (its cost grows
    faster than the text): what a long answer says after that does not move the signal."""
    head = (ON_TOPIC + " ") * (SIMILARITY_CHARS // len(ON_TOPIC) + 1)
    on, off = head + OFF_TOPIC * 3, head + ON_TOPIC * 3
    assert len(head) > SIMILARITY_CHARS
    assert query_answer_similarity(embed, QUERY, on) == query_answer_similarity(embed, QUERY, off)
    assert query_answer_similarity(embed, QUERY, ON_TOPIC) == embedding_similarity(embed, QUERY, ON_TOPIC)


def test_cosine_of_a_zero_vector_is_zero() -> None:
    assert cosine([0.0, 0.0], [1.0, 2.0]) == 0.0
    assert cosine([1.0, 0.0], [-2.0, 0.0]) == pytest.approx(-1.0)
