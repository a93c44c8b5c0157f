"""Live quality signals through the real replay server: token log-probabilities and N
draft samples, with providers that honour `logprobs`/`n` and providers that ignore them,
on both client paths (the built-in OpenAI-compatible client and litellm)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cascadeflow_cli.config import parse_config
from cascadeflow_cli.engine.cascade import Cascade
from cascadeflow_cli.engine.providers import ChatRequest, complete, provider_for
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.conftest import GOOD_ANSWER, config_text, ledger_rows
from tests.engine.test_providers import CLIENTS, model

MATH = "A shop sells 6 boxes of 7 pens. How many pens is that?"


def cascade_with(tmp_path: Path, server: ReplayServer, quality: str, **kw: str) -> tuple[Cascade, Path]:
    db = tmp_path / "ledger.db"
    config = parse_config(config_text(server.base_url, extra=f"[quality]\n{quality}\n", **kw))
    return Cascade(config, open_ledger(db), sleep=lambda s: None), db


@pytest.mark.parametrize("client", CLIENTS)
def test_logprobs_and_n_are_asked_and_parsed(server: ReplayServer, client: str) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer="It is 42.", samples=("It is 41.",)))
    m = model(server, client)
    result = complete(
        provider_for(m), m, ChatRequest([{"role": "user", "content": "q"}], 50, logprobs=True, n=3)
    )
    sent = server.requests[-1]
    assert sent["logprobs"] is True and sent["top_logprobs"] == 0 and sent["n"] == 3
    assert [c.text for c in result.choices] == ["It is 42.", "It is 41.", "It is 42."]
    assert result.logprobs is not None and len(result.logprobs) == 3  # one per word-piece
    assert all(v <= 0 for v in result.logprobs)
    # the same text gets the same log-probabilities (deterministic replay)
    assert result.choices[0].logprobs == result.choices[2].logprobs != result.choices[1].logprobs


@pytest.mark.parametrize("client", CLIENTS)
def test_a_provider_that_ignores_logprobs_and_n_gives_one_plain_choice(
    server: ReplayServer, client: str
) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer="It is 42.", honor_logprobs=False, honor_n=False))
    m = model(server, client)
    result = complete(
        provider_for(m), m, ChatRequest([{"role": "user", "content": "q"}], 50, logprobs=True, n=3)
    )
    assert result.text == "It is 42." and len(result.choices) == 1 and result.logprobs is None


def test_plain_requests_carry_no_signal_fields(tmp_path: Path, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    cascade, db = cascade_with(tmp_path, server, "")
    cascade.run("What is the capital of France?")
    assert not {"logprobs", "top_logprobs", "n"} & set(server.requests[-1])
    assert ledger_rows(db, "call_signals") == []


def test_n_samples_in_one_call_vote_for_the_draft(tmp_path: Path, server: ReplayServer) -> None:
    # recorded answer 41, two of three samples say 42: the majority (42) is the draft
    wrong, right = "6 * 7 = 41.\n#### 41", "6 * 7 = 42.\n#### 42"
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=wrong, samples=(right, right)))
    server.set_behavior("gpt-4o", ModelBehavior(answer="#### 42"))
    cascade, db = cascade_with(tmp_path, server, "consistency_samples = 3\nlogprobs = true")
    result = cascade.run(MATH, domain="math")
    assert server.request_count("gpt-4o-mini") == 1 and server.requests[0]["n"] == 3
    calls = ledger_rows(db, "calls")
    draft = calls[0]
    assert draft["role"] == "draft" and "42" in draft["answer"]
    assert [c["role"] for c in calls if c["role"] == "sample"] == []  # n was honoured: one call
    [signals] = ledger_rows(db, "call_signals")
    assert signals["call_id"] == draft["id"] and signals["samples"] == 3
    assert signals["agreement"] == pytest.approx(2 / 3, abs=1e-3)
    assert len(json.loads(str(signals["logprobs"]))) > 0
    if result.draft_accepted:
        assert "42" in result.answer


def test_a_provider_that_ignores_n_gets_separate_priced_sample_calls(
    tmp_path: Path, server: ReplayServer
) -> None:
    server.set_behavior(
        "gpt-4o-mini",
        ModelBehavior(
            answer="6 * 7 = 41.\n#### 41",
            samples=("6 * 7 = 42.\n#### 42",) * 2,
            honor_n=False,
            honor_logprobs=False,
        ),
    )
    cascade, db = cascade_with(tmp_path, server, "consistency_samples = 3\nlogprobs = true")
    result = cascade.run(MATH, domain="math")
    calls = ledger_rows(db, "calls")
    mini = [c for c in calls if c["model"] == "mini"]
    assert [c["role"] for c in mini] == ["draft", "sample", "sample"]
    assert server.request_count("gpt-4o-mini") == 3
    assert all(int(str(c["cost_nusd"])) > 0 for c in mini)  # every sample is priced
    [req] = ledger_rows(db, "requests")
    assert req["cost_nusd"] == sum(int(str(c["cost_nusd"])) for c in calls)
    assert "#### 42" in str(mini[0]["answer"])  # the majority answer is the draft
    [signals] = ledger_rows(db, "call_signals")
    assert signals["logprobs"] is None and signals["agreement"] == pytest.approx(2 / 3, abs=1e-3)
    # sample calls are not extra drafts: acceptance and escalation are about the chain
    assert result.escalated == (not result.draft_accepted)
    assert [c.role for c in result.calls][:3] == ["draft", "sample", "sample"]


def test_a_failing_sampled_draft_escalates_like_any_failed_draft(
    tmp_path: Path, server: ReplayServer
) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer="#### 42", honor_n=False, status=500))
    server.set_behavior("gpt-4o", ModelBehavior(answer=GOOD_ANSWER))
    cascade, db = cascade_with(tmp_path, server, "consistency_samples = 2\nlogprobs = true")
    result = cascade.run(MATH)
    assert result.model == "big" and result.answer == GOOD_ANSWER and result.escalated
    assert [c["status"] for c in ledger_rows(db, "calls")] == ["error", "ok"]


def test_a_provider_that_rejects_the_extras_is_asked_plainly(tmp_path: Path, server: ReplayServer) -> None:
    """A server that answers 400 to `logprobs`/`n` (some do) costs the user nothing."""
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, status=400, fail_times=1))
    cascade, _ = cascade_with(tmp_path, server, "consistency_samples = 2\nlogprobs = true")
    result = cascade.run("What is the capital of France?")
    assert result.draft_accepted and result.answer == GOOD_ANSWER
    first, second = server.requests[0], server.requests[1]
    assert first["n"] == 2 and first["logprobs"] is True
    assert "n" not in second and "logprobs" not in second


def test_n_samples_neither_inflate_the_savings_nor_escape_the_reservation(
    tmp_path: Path, server: ReplayServer
) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    plain, _ = cascade_with(tmp_path / "a", server, "")
    sampled, _ = cascade_with(tmp_path / "b", server, "consistency_samples = 3")
    one = plain.run("What is the capital of France?")
    three = sampled.run("What is the capital of France?")
    assert three.draft_accepted and three.calls[0].output_tokens == 3 * one.calls[0].output_tokens
    assert three.cost_nusd > one.cost_nusd  # three samples are paid for ...
    assert three.verifier_only_cost_nusd == one.verifier_only_cost_nusd  # ... but the verifier writes one
    messages = [{"role": "user", "content": "q"}]
    sampled_worst, plain_worst = sampled.costs.estimate(messages, 100), plain.costs.estimate(messages, 100)
    assert sampled_worst(["mini", "big"]) - plain_worst(["mini", "big"]) == 2 * plain_worst(["mini"])
