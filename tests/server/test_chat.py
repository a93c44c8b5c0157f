"""`POST /v1/chat/completions` without streaming, `GET /v1/models`, `GET /health`, keys:
the official openai SDK as the client, the replay server as the provider."""

from __future__ import annotations

from decimal import Decimal

import httpx
import openai
import pytest

from cascadeflow_cli.ledger.budgets import BudgetConfig, remove_budget, set_budget
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.ledger.keys import revoke_key
from cascadeflow_cli.replay.server import ModelBehavior
from tests.cli.support import DETAILED, LONG_ANSWER, QUERY, REFUSAL
from tests.conftest import GOOD_ANSWER, ledger_rows
from tests.server.conftest import Stack, make_key


def ask(stack: Stack, model: str = "cascade", query: str = QUERY, **kw: object):
    return stack.client().chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": query}], **kw
    )


def test_an_accepted_draft_answers_through_the_sdk_and_lands_in_the_ledger(stack: Stack) -> None:
    stack.replay.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    raw = ask(stack)
    completion = raw.parse()
    assert completion.choices[0].message.content == GOOD_ANSWER
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "cascade" and completion.object == "chat.completion"
    assert raw.headers["x-cascade-model"] == "mini"
    assert raw.headers["x-cascade-draft-accepted"] == "true"
    [req] = ledger_rows(stack.db, "requests")
    assert req["user"] == "alice" and req["status"] == "ok" and req["draft_accepted"] == 1
    assert raw.headers["x-cascade-request-id"] == req["id"] == completion.id.removeprefix("chatcmpl-")
    assert Decimal(raw.headers["x-cascade-cost"]) * 10**9 == req["cost_nusd"] > 0
    assert Decimal(raw.headers["x-cascade-savings"]) * 10**9 == req["savings_nusd"] > 0
    calls = ledger_rows(stack.db, "calls")
    assert completion.usage.prompt_tokens == sum(c["input_tokens"] for c in calls)
    assert completion.usage.completion_tokens == sum(c["output_tokens"] for c in calls)
    assert ledger_rows(stack.db, "reservations") == []


def test_an_escalated_request_answers_with_the_verifier(stack: Stack) -> None:
    stack.replay.set_behavior("gpt-4o-mini", ModelBehavior(answer=REFUSAL))
    stack.replay.set_behavior("gpt-4o", ModelBehavior(answer=LONG_ANSWER))
    raw = ask(stack, query=DETAILED)
    assert raw.parse().choices[0].message.content == LONG_ANSWER
    assert raw.headers["x-cascade-model"] == "big" and raw.headers["x-cascade-draft-accepted"] == "false"
    assert Decimal(raw.headers["x-cascade-savings"]) < 0  # the refused draft was paid for
    assert [c["role"] for c in ledger_rows(stack.db, "calls")] == ["draft", "verifier"]


def test_the_whole_conversation_reaches_the_provider(stack: Stack) -> None:
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Name a French city."},
        {"role": "assistant", "content": "Lyon."},
        {"role": "user", "content": [{"type": "text", "text": QUERY}]},
    ]
    stack.client().chat.completions.create(model="mini", messages=messages)  # type: ignore[arg-type]
    [sent] = stack.replay.requests
    assert sent["messages"] == [
        {**m, "content": QUERY} if isinstance(m["content"], list) else m for m in messages
    ]
    [req] = ledger_rows(stack.db, "requests")
    assert req["query"] == QUERY and req["model"] == "mini"


def test_a_model_name_runs_that_model_alone(stack: Stack) -> None:
    ask(stack, model="big")
    assert stack.replay.request_count("gpt-4o") == 1 and stack.replay.request_count("gpt-4o-mini") == 0


def test_models_lists_the_chains_and_each_model(stack_factory: object) -> None:
    stack: Stack = stack_factory(extra_models='\n[domains]\ncode = ["big"]\n')  # type: ignore[operator]
    names = [m.id for m in stack.client().models.list()]
    assert names == ["cascade", "cascade/code", "mini", "big"]
    ask(stack, model="cascade/code")
    [req] = ledger_rows(stack.db, "requests")
    assert req["domain"] == "code" and req["model"] == "big"


def test_health_needs_no_key(stack: Stack) -> None:
    response = httpx.get(stack.url.removesuffix("/v1") + "/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_an_unknown_or_revoked_key_gets_401_in_openai_shape(stack: Stack) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        stack.client(key="sk-cf-not-a-key").chat.completions.create(
            model="cascade", messages=[{"role": "user", "content": QUERY}]
        )
    assert caught.value.code == "invalid_api_key"
    other = make_key(stack.config, stack.db, "bob")
    ledger = open_ledger(stack.db)
    revoke_key(ledger, other[:14])
    ledger.close()
    with pytest.raises(openai.AuthenticationError):
        stack.client(key=other).models.list()
    assert ledger_rows(stack.db, "requests") == [] and stack.replay.requests == []
    assert all(other not in line and stack.key not in line for line in stack.log)


@pytest.mark.parametrize("budget", ["none", "user", "key"])
def test_a_key_revoked_after_it_was_used_gets_401_before_any_provider_call(
    stack: Stack, budget: str
) -> None:
    # the server keeps keys it has seen; the reservation's transaction (or, with no budget
    # to reserve against, a read of its own) must still see the revocation at once
    ledger = open_ledger(stack.db)
    if budget == "user":
        set_budget(ledger, "bob", BudgetConfig(daily=Decimal("100")))
    ledger.close()
    extra = {"budget": BudgetConfig(total=Decimal("100"))} if budget == "key" else {}
    other = make_key(stack.config, stack.db, "bob", **extra)
    for _ in range(2):  # the second request is served from the cache
        stack.client(key=other).chat.completions.create(
            model="cascade", messages=[{"role": "user", "content": QUERY}]
        )
    calls, rows = len(stack.replay.requests), len(ledger_rows(stack.db, "requests"))
    ledger = open_ledger(stack.db)
    revoke_key(ledger, other[:14])
    ledger.close()
    with pytest.raises(openai.AuthenticationError) as caught:
        stack.client(key=other).chat.completions.create(
            model="cascade", messages=[{"role": "user", "content": QUERY}]
        )
    assert caught.value.code == "invalid_api_key"
    body = {"model": "cascade", "stream": True, "messages": [{"role": "user", "content": QUERY}]}
    streamed = stack.post(body, key=other)
    assert streamed.status_code == 401 and streamed.json()["error"]["code"] == "invalid_api_key"
    assert len(stack.replay.requests) == calls and len(ledger_rows(stack.db, "requests")) == rows
    assert ledger_rows(stack.db, "reservations") == []
    assert stack.client().chat.completions.create(  # alice's key is untouched
        model="cascade", messages=[{"role": "user", "content": QUERY}]
    ).choices[0].message.content


def test_a_budget_changed_while_serving_applies_to_the_next_request(stack_factory: object) -> None:
    # the server remembers who has a budget; the reservation's transaction reads it again
    stack: Stack = stack_factory(extra='\n[budgets]\nmode = "block"\n')  # type: ignore[operator]
    ledger = open_ledger(stack.db)
    set_budget(ledger, "alice", BudgetConfig(daily=Decimal("100")))
    ledger.close()
    assert ask(stack).parse().choices[0].message.content
    ledger = open_ledger(stack.db)
    set_budget(ledger, "alice", BudgetConfig(daily=Decimal("0.000001")))
    ledger.close()
    calls = len(stack.replay.requests)
    with pytest.raises(openai.RateLimitError):
        ask(stack)
    assert len(stack.replay.requests) == calls
    ledger = open_ledger(stack.db)
    remove_budget(ledger, "alice")
    ledger.close()
    assert ask(stack).parse().choices[0].message.content
    assert ledger_rows(stack.db, "reservations") == []


def test_a_refused_budget_is_429_with_retry_after_the_window_reset(stack_factory: object) -> None:
    stack: Stack = stack_factory(extra='\n[budgets]\nmode = "block"\n')  # type: ignore[operator]
    ledger = open_ledger(stack.db)
    set_budget(ledger, "alice", BudgetConfig(daily=Decimal("0.000001")))
    ledger.close()
    with pytest.raises(openai.RateLimitError) as caught:
        ask(stack)
    error = caught.value
    assert error.status_code == 429 and error.code == "budget_exceeded"
    assert error.type == "insufficient_quota" and "daily" in error.message
    retry_after = int(error.response.headers["retry-after"])
    assert 0 < retry_after <= 24 * 3600
    assert stack.replay.requests == []  # refused before any provider was called
    [req] = ledger_rows(stack.db, "requests")
    assert req["status"] == "blocked" and ledger_rows(stack.db, "reservations") == []


def test_degrade_mode_switches_to_the_cheaper_chain_as_ask_does(stack_factory: object) -> None:
    stack: Stack = stack_factory(extra='\n[budgets]\nmode = "degrade"\n')  # type: ignore[operator]
    stack.replay.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    ledger = open_ledger(stack.db)
    set_budget(ledger, "alice", BudgetConfig(daily=Decimal("0.004")))  # the full chain could cross it
    ledger.close()
    raw = ask(stack)
    assert raw.headers["x-cascade-enforcement"] == "degrade" and raw.headers["x-cascade-model"] == "mini"
    [req] = ledger_rows(stack.db, "requests")
    assert req["enforcement"] == "degrade"


def test_a_provider_failure_is_502_and_recorded(stack: Stack) -> None:
    stack.replay.set_behavior("gpt-4o", ModelBehavior(status=503))
    response = stack.post({"model": "big", "messages": [{"role": "user", "content": QUERY}]})
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "provider_error"
    [req] = ledger_rows(stack.db, "requests")
    assert req["status"] == "error"


def test_every_request_gets_one_access_log_line_without_prompt_or_key(stack: Stack) -> None:
    ask(stack)
    stack.post({"model": "cascade"}, key="sk-cf-wrong")
    lines = stack.log
    assert len(lines) == 2, lines
    assert " POST /v1/chat/completions 200 " in lines[0] and "user=alice" in lines[0]
    assert " 401 " in lines[1]
    assert all(QUERY not in line and "France" not in line and stack.key not in line for line in lines)


def test_a_path_can_neither_forge_an_access_log_line_nor_print_a_key(stack: Stack) -> None:
    """hostile-4: `GET /a%0a<line>` wrote a second, forged line into the access log and
    `GET /<key>` the whole key (a key pasted into the URL by mistake)."""
    root = stack.url.removesuffix("/v1")
    httpx.get(f"{root}/a%0a2026-01-01T00:00:00Z%20POST%20/v1/forged%20200", timeout=20)
    httpx.get(f"{root}/{stack.key}", timeout=20)
    lines = stack.log
    assert len(lines) == 2, lines
    assert all("\n" not in line for line in lines) and "/a\\n2026" in lines[0]
    assert stack.key not in lines[1] and "[redacted]" in lines[1]


def test_a_body_nested_too_deeply_is_a_400_not_a_500(stack: Stack) -> None:
    """hostile-4: 100,000 nested brackets made json.loads raise RecursionError: HTTP 500."""
    response = httpx.post(
        f"{stack.url}/chat/completions",
        content=b"[" * 100_000 + b"]" * 100_000,
        headers={"Authorization": f"Bearer {stack.key}", "Content-Type": "application/json"},
        timeout=20,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"
