from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from cascadeflow_cli.config import parse_config
from cascadeflow_cli.engine.cascade import Cascade
from cascadeflow_cli.engine.pricing import Usage, cost_nanos, lookup_price
from cascadeflow_cli.errors import InputError, PricingError, ProviderUnavailableError
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.conftest import GOOD_ANSWER, config_text, ledger_rows

QUERY = "What is the capital of France?"
DETAILED = (
    "Explain in detail how photosynthesis converts light into chemical energy, "
    "including the light-dependent reactions and the Calvin cycle."
)
LONG_ANSWER = (
    "Photosynthesis happens in two linked stages. In the light-dependent reactions, chlorophyll "
    "in the thylakoid membranes absorbs photons, splitting water and releasing oxygen; the energy "
    "drives an electron transport chain that makes ATP and NADPH. In the Calvin cycle, which runs "
    "in the stroma, the enzyme RuBisCO fixes carbon dioxide onto ribulose bisphosphate, and ATP "
    "and NADPH reduce the products to glyceraldehyde-3-phosphate, the sugar the plant builds on. "
    "Most of that sugar regenerates the cycle; the rest becomes glucose, sucrose and starch."
)


def make_cascade(tmp_path: Path, server: ReplayServer, **kw: str) -> tuple[Cascade, Path]:
    db = tmp_path / "ledger.db"
    config = parse_config(config_text(server.base_url, **kw))
    return Cascade(config, open_ledger(db), sleep=lambda s: None), db


def test_good_draft_is_accepted_and_costs_only_the_draft(tmp_path: Path, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    cascade, db = make_cascade(tmp_path, server)
    result = cascade.run(QUERY, "alice")
    assert result.answer == GOOD_ANSWER
    assert result.draft_accepted and not result.escalated
    assert server.request_count("gpt-4o") == 0
    mini, big = (lookup_price(m) for m in cascade.config.chain())
    draft = result.calls[0]
    assert result.cost_nusd == cost_nanos(mini, Usage(draft.input_tokens, draft.output_tokens)) > 0
    # verifier-only is an estimate from the strong model's prices and the same tokens
    assert result.verifier_only_cost_nusd == cost_nanos(big, Usage(draft.input_tokens, draft.output_tokens))
    assert result.savings_nusd == result.verifier_only_cost_nusd - result.cost_nusd > 0
    [req] = ledger_rows(db, "requests")
    assert req["user"] == "alice" and req["status"] == "ok" and req["draft_accepted"] == 1
    assert req["cost_nusd"] == result.cost_nusd and req["query"] == QUERY
    [call] = ledger_rows(db, "calls")
    assert call["role"] == "draft" and call["accepted"] == 1 and call["cost_source"] == "litellm"
    assert call["provider"] == "openai" and call["ts"].endswith("Z")


def test_refused_draft_escalates_and_savings_go_negative(tmp_path: Path, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer="I'm sorry, but I can't help with that."))
    server.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER))
    cascade, db = make_cascade(tmp_path, server)
    result = cascade.run(DETAILED, "bob")
    assert result.escalated and not result.draft_accepted
    assert result.answer == LONG_ANSWER and result.model == "big"
    draft, verifier = result.calls
    assert draft.accepted is False and any("refusal" in r for r in draft.quality_reasons)
    assert verifier.accepted is True
    assert result.verifier_only_cost_nusd == verifier.cost_nusd
    assert result.savings_nusd == -draft.cost_nusd < 0
    assert [c["role"] for c in ledger_rows(db, "calls")] == ["draft", "verifier"]


def test_truncated_draft_escalates(tmp_path: Path, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=LONG_ANSWER, finish_reason="length"))
    server.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER))
    cascade, _ = make_cascade(tmp_path, server)
    result = cascade.run(DETAILED)
    assert result.escalated and result.calls[0].quality_score is not None
    assert result.calls[0].quality_score < cascade.validator.preset.threshold


def test_failed_draft_escalates_and_is_recorded(tmp_path: Path, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(status=500))
    server.set_behavior("gpt-4o", ModelBehavior(answer=GOOD_ANSWER))
    cascade, db = make_cascade(tmp_path, server)
    result = cascade.run(QUERY)
    assert result.answer == GOOD_ANSWER and result.escalated
    failed = ledger_rows(db, "calls")[0]
    assert failed["status"] == "error" and failed["cost_nusd"] == 0
    assert failed["attempts"] == 3  # 1 + max_retries (2)
    assert "500" in failed["error"]
    assert server.request_count("gpt-4o-mini") == 3


def test_last_model_failure_fails_the_request_and_keeps_the_ledger_consistent(
    tmp_path: Path, server: ReplayServer
) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer="Maybe."))
    server.set_behavior("gpt-4o", ModelBehavior(status=503))
    cascade, db = make_cascade(tmp_path, server)
    with pytest.raises(ProviderUnavailableError):
        cascade.run(DETAILED)
    [req] = ledger_rows(db, "requests")
    assert req["status"] == "error" and "503" in req["error"]
    calls = ledger_rows(db, "calls")
    assert [c["status"] for c in calls] == ["ok", "error"]
    assert req["cost_nusd"] == calls[0]["cost_nusd"] > 0  # the draft was paid for


def test_retry_then_success(tmp_path: Path, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, status=429, fail_times=2))
    cascade, db = make_cascade(tmp_path, server)
    result = cascade.run(QUERY)
    assert result.draft_accepted
    assert ledger_rows(db, "calls")[0]["attempts"] == 3


def test_unpriced_model_fails_before_any_call(tmp_path: Path, server: ReplayServer) -> None:
    extra = (
        f'[[models]]\nname = "mystery"\nmodel = "openai/no-such-model-xyz"\napi_base = "{server.base_url}"\n'
    )
    cascade, db = make_cascade(tmp_path, server, extra_models=extra, chain='["mystery", "big"]')
    with pytest.raises(PricingError, match="no-such-model-xyz"):
        cascade.run(QUERY)
    assert server.request_count() == 0
    assert ledger_rows(db, "requests") == []


def test_config_price_overrides_make_an_unknown_model_usable(tmp_path: Path, server: ReplayServer) -> None:
    extra = (
        f'[[models]]\nname = "local"\nmodel = "openai/my-llama"\napi_base = "{server.base_url}"\n'
        "input_cost_per_million = 0.1\noutput_cost_per_million = 0.2\n"
    )
    server.set_behavior(
        "my-llama", ModelBehavior(answer=GOOD_ANSWER, prompt_tokens=1000, completion_tokens=500)
    )
    cascade, _ = make_cascade(tmp_path, server, extra_models=extra, chain='["local"]')
    result = cascade.run(QUERY)
    # 1000 * 0.1/1M + 500 * 0.2/1M = 0.0002 USD exactly
    assert result.cost_nusd == 200_000
    assert lookup_price(cascade.config.models["local"]).input_per_million == Decimal("0.1")


@pytest.mark.parametrize("max_tokens", [10**23, 10**12 + 1, -5])
def test_a_token_limit_the_ledger_cannot_hold_is_refused_before_any_call(
    tmp_path: Path, server: ReplayServer, max_tokens: int
) -> None:
    # no price map knows this model's output limit, so max_tokens went as asked: 10**23 was
    # sent and paid, then the call row overflowed SQLite's int64 (hostile-13)
    extra = (
        f'[[models]]\nname = "local"\nmodel = "openai/my-llama"\napi_base = "{server.base_url}"\n'
        "input_cost_per_million = 0.1\noutput_cost_per_million = 0.2\n"
    )
    server.set_behavior("my-llama", ModelBehavior(answer=GOOD_ANSWER))
    cascade, db = make_cascade(tmp_path, server, extra_models=extra, chain='["local"]')
    with pytest.raises(InputError, match="max_tokens must be a whole number from 1 to 1,000,000,000,000"):
        cascade.run(QUERY, max_tokens=max_tokens)
    assert server.request_count() == 0
    assert ledger_rows(db, "requests") == []
    assert cascade.run(QUERY, max_tokens=10**12).answer == GOOD_ANSWER  # the bound itself is fine


def test_missing_usage_is_estimated_not_free(tmp_path: Path, server: ReplayServer) -> None:
    server.set_behavior(
        "gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, prompt_tokens=0, completion_tokens=0)
    )
    cascade, db = make_cascade(tmp_path, server)
    result = cascade.run(QUERY)
    assert result.cost_nusd > 0
    assert ledger_rows(db, "calls")[0]["cost_source"] == "litellm+estimated-tokens"


def test_store_prompts_false_keeps_text_out_of_the_ledger(tmp_path: Path, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    db = tmp_path / "ledger.db"
    config = parse_config(config_text(server.base_url) + "\n[ledger]\nstore_prompts = false\n")
    result = Cascade(config, open_ledger(db)).run(QUERY)
    assert result.answer == GOOD_ANSWER
    [req] = ledger_rows(db, "requests")
    assert req["query"] is None and req["answer"] is None
    assert ledger_rows(db, "calls")[0]["answer"] is None


def test_cached_and_reasoning_tokens_are_priced(tmp_path: Path, server: ReplayServer) -> None:
    server.set_behavior(
        "gpt-4o-mini",
        ModelBehavior(answer=GOOD_ANSWER, prompt_tokens=1000, completion_tokens=100, cached_tokens=800),
    )
    cascade, db = make_cascade(tmp_path, server)
    result = cascade.run(QUERY)
    mini = lookup_price(cascade.config.models["mini"])
    assert mini.cached_input_per_million is not None
    expected = cost_nanos(mini, Usage(1000, 100, cached_tokens=800))
    assert result.cost_nusd == expected < cost_nanos(mini, Usage(1000, 100))
    assert ledger_rows(db, "calls")[0]["cached_tokens"] == 800


def test_a_detected_domain_picks_its_chain_and_is_recorded(tmp_path: Path, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER))
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    cascade, db = make_cascade(tmp_path, server, extra='[domains]\ncode = ["big"]\n')
    coded = cascade.run("Write a Python function that reverses a linked list in place.", "alice")
    assert coded.domain == "code" and 0.5 <= coded.domain_confidence <= 1.0
    assert server.request_count("gpt-4o") == 1 and server.request_count("gpt-4o-mini") == 0
    general = cascade.run(QUERY, "alice")
    assert general.domain == "general" and general.domain_confidence < 1.0
    assert server.request_count("gpt-4o-mini") == 1  # the default chain
    given = cascade.run(QUERY, "alice", domain="code")  # the caller's word wins
    assert given.domain == "code" and given.domain_confidence == 1.0
    assert server.request_count("gpt-4o") == 2
    rows = ledger_rows(db, "requests")
    assert [(r["domain"], r["domain_confidence"]) for r in rows] == [
        ("code", coded.domain_confidence), ("general", general.domain_confidence), ("code", 1.0)]


def test_without_domains_to_route_to_nothing_is_detected(tmp_path: Path, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    cascade, db = make_cascade(tmp_path, server)
    result = cascade.run("Write a Python function that reverses a linked list in place.", "alice")
    assert result.domain is None and result.domain_confidence is None
    assert cascade.run(QUERY, "alice", domain="legal").domain == "legal"  # given: recorded
    assert [r["domain"] for r in ledger_rows(db, "requests")] == [None, "legal"]


# --- calls the provider may bill though no answer came: charged an estimate, never $0

SLOW_BIG = (  # the verifier, with a short timeout (its wire model's behaviour is shared with "big")
    '[[models]]\nname = "slow"\nmodel = "openai/gpt-4o"\napi_base = "{url}"\n'
    "timeout = 0.5\nmax_retries = {retries}\nretry_delay = 0.01\n"
)


def _estimated(cascade: Cascade, call: dict[str, object], tries: int) -> None:
    """``call`` is charged ``tries`` times its prompt (counted from the text) plus max_tokens."""
    price = lookup_price(cascade.config.models[str(call["model"])])
    assert call["output_tokens"] == tries * cascade.config.cascade.max_tokens
    assert int(str(call["input_tokens"])) > 0 and int(str(call["input_tokens"])) % tries == 0
    assert call["cost_nusd"] == cost_nanos(price, Usage(int(str(call["input_tokens"])),
                                                        int(str(call["output_tokens"])))) > 0
    assert str(call["cost_source"]).endswith("+estimated-unanswered")


def test_a_call_that_timed_out_is_charged_its_estimate_and_its_reservation_settles_to_it(
    tmp_path: Path, server: ReplayServer
) -> None:
    from cascadeflow_cli.errors import ProviderTimeoutError
    from cascadeflow_cli.ledger.budgets import BudgetConfig, set_budget, window_spend
    from cascadeflow_cli.windows import window

    server.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER, latency_s=1.5))
    cascade, db = make_cascade(tmp_path, server, extra_models=SLOW_BIG.format(url=server.base_url, retries=1),
                               chain='["slow"]', extra='[budgets]\nmode = "block"')
    set_budget(cascade.ledger, "alice", BudgetConfig(daily=Decimal("5")))
    with pytest.raises(ProviderTimeoutError):
        cascade.run(DETAILED, "alice")
    [req] = ledger_rows(db, "requests")
    [call] = ledger_rows(db, "calls")
    assert req["status"] == "error" and call["status"] == "error" and call["attempts"] == 2
    _estimated(cascade, call, tries=2)  # both tries were sent: the provider may bill both
    assert req["cost_nusd"] == call["cost_nusd"]
    assert ledger_rows(db, "reservations") == []  # settled to the charge, not released to $0
    assert window_spend(cascade.ledger.db, "alice", window("daily", cascade.ledger.clock.now(), "UTC")) \
        == call["cost_nusd"]


def test_a_try_that_timed_out_before_a_retry_answered_is_charged_too(
    tmp_path: Path, server: ReplayServer
) -> None:
    server.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER, latency_s=1.5, fail_times=1,
                                                prompt_tokens=100, completion_tokens=50))
    cascade, db = make_cascade(tmp_path, server, extra_models=SLOW_BIG.format(url=server.base_url, retries=1),
                               chain='["slow"]')
    result = cascade.run(DETAILED)
    assert result.answer == LONG_ANSWER
    [call] = ledger_rows(db, "calls")
    price = lookup_price(cascade.config.models["slow"])
    answered = cost_nanos(price, Usage(100, 50))
    assert call["status"] == "ok" and call["attempts"] == 2
    # the answer's tokens, plus the lost try's estimate
    assert call["output_tokens"] == 50 + cascade.config.cascade.max_tokens
    assert int(str(call["cost_nusd"])) > answered and call["cost_source"] == "litellm+estimated-unanswered"
    assert result.cost_nusd == call["cost_nusd"] == ledger_rows(db, "requests")[0]["cost_nusd"]
    assert result.savings_nusd == 0  # the verifier alone: its own row, lost try included


def test_a_5xx_or_a_refused_connection_costs_nothing(tmp_path: Path, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o", ModelBehavior(status=503))
    cascade, db = make_cascade(tmp_path, server, chain='["big"]')
    with pytest.raises(ProviderUnavailableError):
        cascade.run(QUERY)
    [call] = ledger_rows(db, "calls")
    assert call["cost_nusd"] == 0 and call["cost_source"] == "litellm"  # providers bill no error status


def test_a_streamed_call_that_timed_out_before_its_first_token_is_charged_its_estimate(
    tmp_path: Path, server: ReplayServer
) -> None:
    from cascadeflow_cli.engine.providers.stream import StreamSink
    from cascadeflow_cli.errors import ProviderTimeoutError

    server.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER, latency_s=1.5))
    cascade, db = make_cascade(tmp_path, server, extra_models=SLOW_BIG.format(url=server.base_url, retries=0),
                               chain='["slow"]')
    written: list[str] = []
    with pytest.raises(ProviderTimeoutError):
        cascade.run(DETAILED, sink=StreamSink(written.append))
    assert written == []
    [call] = ledger_rows(db, "calls")
    _estimated(cascade, call, tries=1)
    assert ledger_rows(db, "requests")[0]["cost_nusd"] == call["cost_nusd"]
