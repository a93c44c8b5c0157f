"""The replay server's live quality signals over real HTTP: token log-probabilities and
several samples (`n`), deterministic, honoured or ignored per model like real providers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with ReplayServer() as srv:
        yield srv


def chat(server: ReplayServer, model: str, query: str = "q", **extra: Any) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": query}], **extra}
    response = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=5)
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def test_logprobs_only_when_asked_one_per_token_and_deterministic(server: ReplayServer) -> None:
    server.set_behavior("m", ModelBehavior(answer="The answer is 42."))
    plain = chat(server, "m")
    assert plain["choices"][0]["logprobs"] is None
    asked = chat(server, "m", logprobs=True, top_logprobs=0)
    content = asked["choices"][0]["logprobs"]["content"]
    assert "".join(t["token"] for t in content) == "The answer is 42."
    assert all(t["logprob"] <= 0 and t["top_logprobs"] == [] for t in content)
    assert chat(server, "m", logprobs=True)["choices"][0]["logprobs"] == asked["choices"][0]["logprobs"]
    server.set_behavior("other", ModelBehavior(answer="The answer is 42."))
    other = chat(server, "other", logprobs=True)["choices"][0]["logprobs"]["content"]
    assert [t["logprob"] for t in other] != [t["logprob"] for t in content]  # per model


def test_a_fixed_logprob_and_a_provider_that_ignores_logprobs(server: ReplayServer) -> None:
    server.set_behavior("sure", ModelBehavior(answer="a b c", logprob=-0.01))
    assert [
        t["logprob"] for t in chat(server, "sure", logprobs=True)["choices"][0]["logprobs"]["content"]
    ] == [-0.01] * 3
    server.set_behavior("deaf", ModelBehavior(answer="a b c", honor_logprobs=False))
    assert chat(server, "deaf", logprobs=True)["choices"][0]["logprobs"] is None


def test_n_samples_cycle_through_the_samples_and_count_their_tokens(server: ReplayServer) -> None:
    server.set_behavior("m", ModelBehavior(answer="first answer", samples=("second", "third one")))
    data = chat(server, "m", n=4)
    texts = [c["message"]["content"] for c in data["choices"]]
    assert texts == ["first answer", "second", "third one", "first answer"]
    assert [c["index"] for c in data["choices"]] == [0, 1, 2, 3]
    assert data["usage"]["completion_tokens"] == sum(-(-len(t) // 4) for t in texts)
    same = ModelBehavior(answer="only me")
    server.set_behavior("same", same)
    assert [c["message"]["content"] for c in chat(server, "same", n=2)["choices"]] == ["only me"] * 2


def test_a_provider_that_ignores_n_answers_once_and_walks_the_samples_per_request(
    server: ReplayServer,
) -> None:
    server.set_behavior("m", ModelBehavior(answer="A", samples=("B",), honor_n=False))
    answers = [chat(server, "m", "same query", n=3)["choices"] for _ in range(3)]
    assert all(len(c) == 1 for c in answers)
    assert [c[0]["message"]["content"] for c in answers] == ["A", "B", "A"]
    assert chat(server, "m", "another query")["choices"][0]["message"]["content"] == "A"


def test_each_sample_is_cut_at_max_tokens(server: ReplayServer) -> None:
    server.set_behavior("m", ModelBehavior(answer="short", samples=("a much longer sampled answer",)))
    choices = chat(server, "m", n=2, max_tokens=2)["choices"]
    assert [c["finish_reason"] for c in choices] == ["stop", "length"]
    assert len(choices[1]["message"]["content"]) == 8


def test_the_command_line_server_can_play_a_provider_without_the_signals() -> None:
    from cascadeflow_cli.replay.server import spawn

    proc, url = spawn("--ignore-n", "--ignore-logprobs")
    try:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": 3, "logprobs": True}
        data = httpx.post(f"{url}/chat/completions", json=body, timeout=10).json()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert len(data["choices"]) == 1 and data["choices"][0]["logprobs"] is None
